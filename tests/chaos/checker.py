# The chaos harness's checker: the store's contract checked over a run's history and final
# state. Each check returns violations as dicts {"check", "detail", "t"}; `check_all` runs them
# all. Every check is sound under the faults the harness injects: where a fault or an
# administrative command makes an outcome legitimately uncertain, that case is not judged.
import math
import re
from collections import defaultdict

INF = math.inf
GRACE = 2.5  # seconds after an administrative command during which old leases may still run
# How long after its start a drainer or follower may still be opening its store (and so fail
# when its first connection is cut): past that, a lost connection must not end it.
STARTUP = 3.0
# What a command says when its store's server went away: it could not connect, or its
# connection was lost (nothing of its write committed) or lost while COMMIT ran (the outcome
# is unknown: its write may or may not be stored).
CONNECTION_LOST = re.compile(r"lost the connection to the PostgreSQL server|cannot connect to the PostgreSQL server")
OUTCOME_UNKNOWN = "outcome is unknown"


class Run:
    """The history indexed: operations with their invocation and outcome, faults per operation,
    handler records per queue, lock holds, the final state."""

    def __init__(self, recs):
        self.recs = recs
        self.ops = {}
        self.faults = defaultdict(list)  # op id -> [(kind, t0, t1)]
        self.locks = []  # [(t0, t1)]
        self.restarts = []  # [(t0, t1, rc)]: server restarts, from the command's start to its end
        self.handlers = defaultdict(list)  # queue -> [hstart/hend records]
        self.final = None
        for r in recs:
            k = r.get("k")
            if k == "invoke":
                self.ops[r["op"]] = {"inv": r, "done": None}
            elif k == "complete":
                self.ops.setdefault(r["op"], {"inv": None, "done": None})["done"] = r
            elif k == "fault":
                if r["kind"] == "lock":
                    self.locks.append((r["t"], r.get("end", INF)))
                elif r["kind"] == "restart":
                    self.restarts.append((r["t"], r.get("end", INF), r.get("rc", 0)))
                elif r["kind"] == "stop":
                    self.faults[r["op"]].append(("stop", r["t"], r.get("end", INF)))
                elif r["kind"] == "stop_end":  # the SIGCONT of the op's last stop
                    fs = self.faults[r["op"]]
                    for n in range(len(fs) - 1, -1, -1):
                        if fs[n][0] == "stop" and fs[n][2] == INF:
                            fs[n] = ("stop", fs[n][1], r["t"])
                            break
                elif r["kind"] in ("kill", "int", "fsize"):
                    self.faults[r["op"]].append((r["kind"], r["t"], INF))
            elif k in ("hstart", "hend"):
                self.handlers[r["q"]].append(r)
            elif k == "final":
                self.final = r

    def span(self, op):
        o = self.ops.get(op)
        if not o or not o["inv"]:
            return (INF, INF)
        return (o["inv"]["t"], o["done"]["t"] if o["done"] else INF)

    def disturbed(self, op, t0, t1):
        """Whether a fault hit OP during [t0, t1]."""
        return any(a <= t1 and b >= t0 for _, a, b in self.faults.get(op, []))

    def locked(self, t0, t1):
        return any(a <= t1 and b >= t0 for a, b in self.locks)

    def restarted(self, t0, t1):
        """Whether the store's server was restarting (every connection cut) during [t0, t1]."""
        return any(a <= t1 and b >= t0 for a, b, _ in self.restarts)

    def err(self, op):
        return ((self.ops.get(op) or {}).get("done") or {}).get("err", "")

    def reported_stale(self, op):
        """Whether drainer OP said the store refused an outcome of it as stale: one of its leases
        lapsed with no fault of ours (its renewals starved on a loaded machine, or busy)."""
        done = (self.ops.get(op) or {}).get("done") or {}
        return done.get("stale", 0) > 0

    def pauses(self):
        return [(a, b) for fs in self.faults.values() for k, a, b in fs if k == "stop"]

    def lock_like(self, t0, t1):
        """Whether the store's lock may have been held by someone else during [t0, t1]: a held
        lock, or any esctl paused (it may have been stopped inside a write transaction)."""
        return self.locked(t0, t1) or any(a <= t1 and b >= t0 for a, b in self.pauses())

    def admin(self, queue, kinds=("create", "recreate", "reset", "retry"), sure=False):
        """Successful (or, unless SURE, unknown-outcome) administrative operations on QUEUE:
        [(kind, t0, t1, op)]; a re-create counts when its delete did. An exit 1 whose connection
        was lost while COMMIT ran is an unknown outcome; any other exit 1 (a connection lost
        before COMMIT, or never made) a failure."""
        out = []
        for op, o in self.ops.items():
            inv = o["inv"]
            if inv and inv.get("queue") == queue and inv.get("kind") in kinds:
                rc = o["done"]["rc"] if o["done"] else None
                if inv["kind"] == "recreate" and o["done"] and o["done"].get("delete_rc") is not None:
                    rc = o["done"]["delete_rc"]  # its delete took effect even if its create failed after
                unknown = rc is None or rc < 0 or rc == 130 or (rc == 1 and OUTCOME_UNKNOWN in o["done"].get("err", ""))
                if rc == 0 or (unknown and not sure):
                    out.append((inv["kind"], inv["t"], o["done"]["t"] if o["done"] else INF, op))
        return sorted(out, key=lambda x: x[1])

    def queue_gone(self, queue, t):
        """Whether QUEUE may be missing at time T: a re-create begun before T may have deleted it
        without creating it again (its create failed: busy, or the server went away between the
        two), and no later re-create had certainly created it by T."""
        gone = False
        for t0, op in sorted((o["inv"]["t"], op) for op, o in self.ops.items() if o["inv"]
                             and o["inv"].get("kind") == "recreate" and o["inv"].get("queue") == queue
                             and o["inv"]["t"] <= t):
            done = self.ops[op]["done"]
            if done is None or done["rc"] != 0:
                gone = True
            elif done["t"] <= t:
                gone = False
        return gone

    def fences(self, queue):
        """The commands that end every lease of QUEUE at their commit (a reset, a delete and
        create again), as {"op", "a", "b", "lo", "hi"}: invoked at a, ended at b (INF if not), and
        the store's lease counter read by the runner just before (lo) and just after (hi), None
        where it could not be read."""
        out = []
        for k, a, b, op in self.admin(queue, ("recreate", "reset")):
            o = self.ops[op]
            out.append({"op": op, "a": a, "b": b, "lo": o["inv"].get("lease_before"),
                        "hi": (o["done"] or {}).get("lease_after")})
        return out


def side(d, f):
    """Which side of fence F (Run.fences) delivery D's lease lies on: "before" (drawn before F's
    commit, so F ended it, however late its handler started), "after" (drawn after it), or None
    (cannot tell). By lease token where both are known (tokens come from a store-wide counter);
    else by the handler's start, with a grace after F for leases drawn before it."""
    lease = d.get("lease")
    if lease is not None and f["lo"] is not None and f["hi"] is not None:
        if lease <= f["lo"]:
            return "before"
        return "after" if lease > f["hi"] else None
    if d["ts"] < f["a"]:
        return "before"
    return "after" if d["ts"] > f["b"] + GRACE else None


def _v(check, detail, t=0.0, **kw):
    return dict(kw, check=check, detail=detail, t=t)


def matches(cfg, ev):
    if cfg.get("category") and ev["stream"].split("-", 1)[0] != cfg["category"]:
        return False
    if cfg.get("types") and ev["type"] not in cfg["types"]:
        return False
    return True


# --- appends -------------------------------------------------------------------------------

WRITE_KINDS = ("append", "append_batch", "import")


def _committed_prefix(inv, idx):
    """Whether the indexes IDX of a write's events that are stored are what whole transactions of
    it leave: all or none of an `append` or `append --ndjson` batch; a prefix of whole --batch
    runs of an import (it commits every --batch lines), or all of it."""
    n = len(inv.get("events", []))
    if inv["kind"] != "import":
        return len(idx) in (0, n)
    return idx == list(range(len(idx))) and (len(idx) % inv.get("batch", 1) == 0 or len(idx) == n)


def check_appends(run):
    """No acknowledged (exit 0) append lost or changed; none written twice; an append that
    failed for certain (exit 2, 3, 4, 5, 7, or 1 for a connection lost before COMMIT or never
    made) left nothing behind (an import: only the whole batches it committed before); one whose
    outcome is unknown (killed, interrupted, its connection lost while COMMIT ran) left all or
    nothing of each transaction, at most once."""
    out = []
    if run.final is None:
        return [_v("final", "no final state recorded")]
    by_id = defaultdict(list)
    by_tag = defaultdict(list)
    for e in run.final["events"]:
        by_id[e["id"]].append(e)
        d = e.get("data")
        if isinstance(d, dict) and "op" in d:
            by_tag[(d["op"], d.get("i"))].append(e)
    for (op, i), evs in by_tag.items():
        if len(evs) > 1:
            out.append(_v("append-duplicated", f"event {i} of {op} stored {len(evs)} times at positions "
                          f"{[e['position'] for e in evs]}", run.span(op)[0], op=op))
    for op, o in run.ops.items():
        inv, done = o["inv"], o["done"]
        if not inv or inv.get("kind") not in WRITE_KINDS or not done:
            continue
        if done["rc"] == 0:
            for a in done.get("acked", []):
                got = by_id.get(a["id"], [])
                if not got:
                    out.append(_v("append-lost", f"{op} acknowledged {a['stream']}@{a['version']} "
                                  f"#{a['position']} (id {a['id']}) but the store lacks it", done["t"], op=op))
                elif a["position"] is not None and (got[0]["stream"], got[0]["version"], got[0]["position"]) != (
                        a["stream"], a["version"], a["position"]):
                    out.append(_v("append-moved", f"{op} acknowledged {a['stream']}@{a['version']} "
                                  f"#{a['position']}, the store has {got[0]['stream']}@{got[0]['version']} "
                                  f"#{got[0]['position']}", done["t"], op=op))
            if len(done.get("acked", [])) != len(inv.get("events", [])):
                out.append(_v("append-ack", f"{op} exited 0 but acknowledged {len(done.get('acked', []))} "
                              f"of {len(inv.get('events', []))} events", done["t"], op=op))
            continue
        idx = [i for i in range(len(inv.get("events", []))) if by_tag.get((op, i))]
        left = [e["position"] for i in idx for e in by_tag[(op, i)]]
        err = done.get("err", "")
        lost = done["rc"] == 1 and CONNECTION_LOST.search(err) and OUTCOME_UNKNOWN not in err
        if done["rc"] in (2, 3, 4, 5, 7) or lost:
            if inv["kind"] == "import" and idx == list(range(len(idx))) and len(idx) % inv.get("batch", 1) == 0:
                left = []  # import commits every --batch lines: whole batches before the failure stay
            if left:
                out.append(_v("append-partial", f"{op} failed with exit {done['rc']} but left events at "
                              f"positions {left}", done["t"], op=op))
        elif not _committed_prefix(inv, idx):
            out.append(_v("append-atomic", f"{op} ({inv['kind']} of {len(inv.get('events', []))} events, exit "
                          f"{done['rc']}) left events {idx} at positions {left}: not whole transactions", done["t"],
                          op=op))
    return out


# --- exit statuses -------------------------------------------------------------------------

def allowed_exits(run, op):
    inv = run.ops[op]["inv"]
    t0, t1 = run.span(op)
    kind = inv["kind"]
    ok = {0}
    if kind == "drainer" or kind == "follower":
        ok = {0, 130}
    if kind == "final_drain":
        ok = {0, 8}
    if run.lock_like(t0, t1):
        ok |= {7}
        if kind == "recreate":
            ok |= {3}  # its delete gave up on the lock, so its create found the queue still there
    for fk, a, b in run.faults.get(op, []):
        if fk == "kill":
            ok |= {-9}
        elif fk == "int":
            ok |= {130, -2}
        elif fk == "fsize":
            ok |= {1, 153, -25}
    if kind == "rebuild":
        # Rebuilds of one db wait for each other up to --busy-timeout.
        for other, o in run.ops.items():
            i2 = o["inv"]
            if other != op and i2 and i2["kind"] == "rebuild" and i2.get("db") == inv.get("db"):
                a, b = run.span(other)
                if a <= t1 and b >= t0:
                    ok |= {7}
    if kind == "drainer" and any(a <= t1 and b >= t0 for _, a, b, _ in run.admin(inv.get("queue"), ("recreate",))):
        ok |= {4}  # its queue was deleted under it
    if kind in ("drainer", "final_drain") and run.queue_gone(inv.get("queue"), t0):
        ok |= {4}  # a re-create deleted its queue, then failed to create it again
    if kind == "recreate" and any(o2 != op and a <= t1 and b >= t0 for _, a, b, o2 in run.admin(inv["queue"], ("recreate",))):
        ok |= {3, 4}  # two re-creates interleaved: one's delete or create finds the other's work
    if kind in ("reset", "retry", "recreate"):
        ok |= {4} if kind == "retry" else set()
    if run.restarted(t0, t1) and CONNECTION_LOST.search(run.err(op)):
        # A server restart cuts every connection. A command that does not reconnect fails on it
        # (a write's outcome then is "failed" or "unknown", see check_appends); a drainer or a
        # follower reconnects, and may fail only while it is still opening its store.
        if kind not in ("drainer", "follower") or any(t0 >= a - STARTUP and t0 <= b for a, b, _ in run.restarts):
            ok |= {1}
    return ok


def check_exits(run):
    """Each operation ended the way the contract allows for what happened to it."""
    out = []
    for op, o in run.ops.items():
        inv, done = o["inv"], o["done"]
        if not inv or not done or inv["kind"] in ("lock",):
            continue
        if done["rc"] not in allowed_exits(run, op):
            out.append(_v("unexpected-exit", f"{op} ({inv['kind']} {inv.get('queue') or ''}) exited "
                          f"{done['rc']}: {done.get('err', '').strip()[-300:]}", done["t"], op=op))
    return out


# --- queues --------------------------------------------------------------------------------

def _deliveries(run, queue):
    """Per handler invocation and event: {"h","d","pos","stream","ver","att","ts","te","ok"}."""
    dl = {}
    for r in run.handlers.get(queue, []):
        key = (r["h"], r["pos"])
        d = dl.setdefault(key, {"h": r["h"], "d": r["d"], "pos": r["pos"], "stream": r["stream"],
                                "ver": r["ver"], "att": r.get("att"), "lease": r.get("lease"),
                                "ts": None, "te": None, "ok": None})
        if r["k"] == "hstart":
            d["ts"] = r["t"]
        else:
            d["te"], d["ok"] = r["t"], r.get("ok")
    return sorted((d for d in dl.values() if d["ts"] is not None), key=lambda d: d["ts"])


def _epoch_start(run, queue):
    # The last life the queue certainly began: a reset or re-create of unknown outcome may or may
    # not have begun another one (if it did, the final drains delivered everything after it).
    starts = [a for k, a, b, _ in run.admin(queue, ("create", "recreate", "reset"), sure=True)]
    return max(starts) if starts else -INF


def _final_sets(run, queue):
    """(matching events, acked positions, parked positions, blocked positions) at the end."""
    fq = run.final["queues"][queue]
    cfg = fq["cfg"]
    evs = [e for e in run.final["events"] if matches(cfg, e)]
    parked = set(fq.get("parked", []))
    blocked = set()
    if cfg.get("poison", "block") == "block":
        held = set()
        for e in evs:
            if e["stream"] in held:
                blocked.add(e["position"])
            if e["position"] in parked:
                held.add(e["stream"])
    acked = {e["position"] for e in evs} - parked - blocked
    return evs, acked, parked, blocked


def check_queue_complete(run, queue):
    """Every matching event delivered (a handler ended well on it in the queue's current life)
    unless parked or held behind a parked one; nothing left leased or undelivered."""
    out = []
    fq = run.final["queues"][queue]
    st = fq.get("status", {})
    evs, acked, parked, blocked = _final_sets(run, queue)
    # An event held behind a parked one may still count as retrying: it failed with the parked
    # one's batch (a lease that expired, say) and waits for its stream to move again.
    if (st.get("leased", 0) or st.get("retrying", 0) > len(blocked)
            or st.get("lag", 0) != len(parked) + len(blocked)):
        out.append(_v("queue-undrained", f"queue {queue} after the final drain: lag {st.get('lag')}, leased "
                      f"{st.get('leased')}, retrying {st.get('retrying')}, parked {len(parked)}, "
                      f"held behind parked {len(blocked)}", run.final["t"], queue=queue))
    since = _epoch_start(run, queue)
    last = [f for f in run.fences(queue) if f["a"] == since]
    good = {d["pos"] for d in _deliveries(run, queue)
            if d["ok"] and d["ts"] >= since and not (last and side(d, last[-1]) == "before")}
    by_pos = {e["position"]: e for e in evs}
    for p in sorted(acked - good):
        e = by_pos[p]
        out.append(_v("acked-undelivered", f"queue {queue}: {e['stream']}@{e['version']} #{p} is acked but no "
                      f"handler ended well on it since the queue's last create/reset", since, queue=queue, pos=p))
    return out


def check_queue_parked(run, queue):
    """A parked event was delivered (or its drainer lost) as many times as --max-attempts asks."""
    out = []
    cfg = run.final["queues"][queue]["cfg"]
    evs, acked, parked, blocked = _final_sets(run, queue)
    since = _epoch_start(run, queue)
    retries = [a for k, a, b, _ in run.admin(queue, ("retry",), sure=True)]
    drainers = [op for op, o in run.ops.items() if o["inv"] and o["inv"]["kind"] in ("drainer", "final_drain")
                and o["inv"].get("queue") == queue]
    dl = _deliveries(run, queue)
    for p in sorted(parked):
        t0 = max([since] + [r for r in retries])
        n = len([d for d in dl if d["pos"] == p and d["ts"] >= t0])
        slack = sum(1 for op in drainers for f in run.faults.get(op, []) if f[2] >= t0)
        slack += sum(1 for a, b in run.locks if b >= t0)
        slack += sum(2 for a, b, _ in run.restarts if b >= t0)  # a delivery cut off, then its settle
        if n + slack < cfg["max_attempts"]:
            out.append(_v("parked-early", f"queue {queue}: #{p} parked after {n} deliveries (max attempts "
                          f"{cfg['max_attempts']}, {slack} faults that could each have cost one)", t0,
                          queue=queue, pos=p))
    return out


def _admin_windows(run, queue):
    # A queue's first create leaves no old lease behind: only later administration opens a window.
    return [(a, b + GRACE) for k, a, b, _ in run.admin(queue, ("recreate", "reset", "retry"))]


def check_queue_order(run, queue):
    """Per stream, first deliveries in version order within each life of the queue. A reset or a
    delete and create ends every lease of the queue at its commit: a delivery leased before it
    (its handler may start long after) belongs to the life before; one that cannot be placed is
    not judged."""
    out = []
    park = run.final["queues"][queue]["cfg"].get("poison") == "park"
    fences = run.fences(queue)
    retries = [a for k, a, b, _ in run.admin(queue, ("retry",))]
    seen = defaultdict(dict)  # (epoch, stream) -> {ver: ts}
    last = {}
    for d in _deliveries(run, queue):
        sides = [side(d, f) for f in fences]
        if None in sides:
            continue
        epoch = sides.count("after")
        key = (epoch, d["stream"])
        if d["ver"] in seen[key]:
            continue
        seen[key][d["ver"]] = d["ts"]
        prev = last.get(key)
        if park and prev is not None and any(r < d["ts"] for r in retries):
            # Under --on-poison park an event may be parked unseen (its leases lapsed with killed
            # drainers), its stream move on, and `retry` bring it back after later events.
            pass
        elif prev is not None and d["ver"] < prev["ver"]:
            out.append(_v("order", f"queue {queue}: {d['stream']}@{d['ver']} first delivered (by {d['d']}) after "
                          f"{d['stream']}@{prev['ver']} (by {prev['d']})", d["ts"], queue=queue))
        if prev is None or d["ver"] > prev["ver"]:
            last[key] = d
    return out


def check_queue_fencing(run, queue):
    """Never an event of stream S handed out while an earlier (or the same) event of S is held by
    another delivery whose lease is current. Observable form: a handler starts on S@w while the
    latest delivery of S@v (v <= w) runs in another handler, and that delivery's drainer was not
    paused, killed or interrupted and no lock was held since shortly before it started (so its
    lease was being renewed), and no administrative command touched the queue meanwhile."""
    out = []
    cfg = run.final["queues"][queue]["cfg"] if run.final else {"ack_ms": 30000}
    ack = cfg.get("ack_ms", 30000) / 1000.0
    wins = _admin_windows(run, queue)
    fences = run.fences(queue)
    dl = _deliveries(run, queue)
    by_stream = defaultdict(list)
    for d in dl:
        by_stream[d["stream"]].append(d)
    for s, ds in by_stream.items():
        reported = set()  # (X's handler, Y's handler): one violation for the batch, not one per event
        for y in ds:
            latest = {}
            for x in ds:
                if x["ts"] >= y["ts"]:
                    break
                latest[x["ver"]] = x
            for v, x in latest.items():
                if v > y["ver"] or x["h"] == y["h"] or x["te"] is None or not (x["ts"] < y["ts"] < x["te"]):
                    continue
                if v == y["ver"] and (x["d"] == y["d"] or run.disturbed(y["d"], y["ts"] - ack - 7.0, y["ts"])):
                    continue  # a paused drainer may run a batch it leased before (at-least-once)
                if any(o is not y and o["h"] == y["h"] and o["ver"] == v for o in ds):
                    continue  # Y's own batch holds S@v too: a (possibly stale) redelivery, in order
                t0 = x["ts"] - ack - 0.5
                if run.disturbed(x["d"], t0, y["ts"]) or run.locked(t0, y["ts"]) or run.restarted(t0, y["ts"]):
                    continue  # (a restart cuts the lease keeper's connection: X's lease may lapse)
                if run.reported_stale(x["d"]):
                    continue  # its lease lapsed unseen (renewals starved or busy): X held nothing
                # A process paused after X's pull may hold the store's lock and so stop X's lease
                # renewals (one paused before could not have let X's pull through).
                if any(x["ts"] - 0.5 <= a <= y["ts"] for a, b in run.pauses()):
                    continue
                if any(a <= y["ts"] and b >= t0 for a, b in wins):
                    continue
                if any(y["ts"] >= f["a"] and side(x, f) != "after" for f in fences):
                    continue  # X's lease may have been ended by a reset or re-create before Y started
                if x["lease"] and y["lease"] and x["lease"] == y["lease"]:
                    continue
                if (x["h"], y["h"]) in reported:
                    continue
                reported.add((x["h"], y["h"]))
                what = "the same event again" if v == y["ver"] else f"{s}@{y['ver']}"
                out.append(_v("fencing", f"queue {queue}: {what} started by {y['d']} (attempt {y['att']}) at "
                              f"{y['ts']:.3f} while {s}@{v} was held by {x['d']} (attempt {x['att']}, handler "
                              f"{x['ts']:.3f}..{x['te']:.3f}, drainer undisturbed, lease current)",
                              y["ts"], queue=queue))
    return out


def check_queue_stale_drainer(run, queue):
    """A drainer of a queue that was deleted (and created again) does not drain the new queue:
    none of its deliveries is leased after the re-create."""
    out = []
    sure = {op for _, _, _, op in run.admin(queue, ("recreate",), sure=True)}
    for f in run.fences(queue):
        if f["op"] not in sure:
            continue  # not a re-create, or one that may not have deleted the queue
        for d in _deliveries(run, queue):
            o = run.ops.get(d["d"])
            if o and o["inv"] and o["inv"]["kind"] == "drainer" and o["inv"]["t"] < f["a"] and side(d, f) == "after":
                out.append(_v("deleted-queue-drainer", f"queue {queue}: {d['d']}, started before {f['op']} deleted and "
                              f"re-created the queue, delivered #{d['pos']} of the new queue", d["ts"], queue=queue))
                break
    return out


# --- query db, relay, followers, verify ------------------------------------------------------

def check_view(run):
    """The drained query db equals a fresh rebuild of the same projection."""
    v = run.final.get("view")
    if not v:
        return []
    if v.get("parked"):
        return []  # a parked projection event is a legitimate gap; exits and parked checks judge it
    db = {r[0]: r for r in v["db"]}
    fresh = {r[0]: r for r in v["fresh"]}
    diff = sorted(k for k in set(db) | set(fresh) if db.get(k) != fresh.get(k))
    if diff:
        return [_v("query-db", f"view.db differs from a fresh rebuild on {len(diff)} streams, e.g. "
                   + "; ".join(f"{k}: db {db.get(k)} fresh {fresh.get(k)}" for k in diff[:3]), run.final["t"])]
    return []


def check_relay(run):
    """The relayed store holds each event the relay queue acked, exactly once, and nothing else."""
    r = run.final.get("relay_store")
    if r is None or "relay" not in run.final["queues"]:
        return []
    out = []
    evs, acked, parked, blocked = _final_sets(run, "relay")
    src = {e["position"]: e["id"] for e in evs}
    ids = [e["id"] for e in r]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        out.append(_v("relay-duplicate", f"ids stored twice in the relayed store: {dup[:5]}", run.final["t"]))
    have = set(ids)
    missing = sorted(p for p in acked if src[p] not in have)
    if missing:
        out.append(_v("relay-missing", f"relay acked positions {missing[:10]} but the relayed store lacks them",
                      run.final["t"]))
    extra = have - set(src.values())
    if extra:
        out.append(_v("relay-extra", f"the relayed store has ids the relay queue never matched: "
                      f"{sorted(extra)[:5]}", run.final["t"]))
    return out


def check_followers(run):
    """A follower prints each matching committed event once, in position order, none skipped;
    one that ran to the end caught up with the store."""
    out = []
    evs = run.final["events"]
    for op, o in run.ops.items():
        inv, done = o["inv"], o["done"]
        if not inv or inv["kind"] != "follower" or not done:
            continue
        cfg = {"category": inv["filter"][1] if inv["filter"][0] == "--category" else None}
        want = [e["position"] for e in evs if matches(cfg, e)]
        got = done.get("lines", [])
        if not got:
            continue
        if got[0] not in want:
            out.append(_v("follower", f"{op} printed #{got[0]}, which it does not match or was never committed",
                          done["t"], op=op))
            continue
        i = want.index(got[0])
        exp = want[i:i + len(got)]
        if got != exp:
            k = next((j for j, (a, b) in enumerate(zip(got, exp)) if a != b), min(len(got), len(exp)))
            out.append(_v("follower", f"{op} printed #{got[k] if k < len(got) else None} where #"
                          f"{exp[k] if k < len(exp) else None} was next (skip, repeat or reorder)", done["t"], op=op))
        elif inv.get("to_end") and got[-1] != want[-1]:
            out.append(_v("follower", f"{op} ended at #{got[-1]}, the store's last match is #{want[-1]}",
                          done["t"], op=op))
    return out


def check_restarts(run):
    """Each server restart the run made brought the server back (else the run judged nothing)."""
    return [_v("restart", f"the server restart at {a:.3f} failed (exit {rc}): the run's history is void", a)
            for a, b, rc in run.restarts if rc != 0]


def check_verify(run):
    out = []
    for what, rc in (run.final.get("verify") or {}).items():
        if rc != 0:
            out.append(_v("verify", f"esctl verify of the {what} exited {rc}", run.final["t"]))
    return out


QUEUE_CHECKS = [check_queue_complete, check_queue_parked, check_queue_order, check_queue_fencing,
                check_queue_stale_drainer]
GLOBAL_CHECKS = [check_appends, check_exits, check_view, check_relay, check_followers, check_verify, check_restarts]


def check_all(recs):
    """Every violation of the run whose records are RECS, and how many checks ran."""
    run = Run(recs)
    if run.final is None:
        return [_v("final", "no final state recorded")], 0
    out, n = [], 0
    for c in GLOBAL_CHECKS:
        out += c(run)
        n += 1
    for q, fq in run.final["queues"].items():
        if "error" in fq.get("status", {}):
            continue  # gone at the end (its last re-create failed under a held lock): nothing to judge
        if fq["cfg"].get("mode") in ("exec", "relay"):
            for c in QUEUE_CHECKS:
                out += c(run, q)
                n += 1
    return out, n
