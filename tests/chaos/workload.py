# The chaos harness's workload: from a seed, the schedule of operations a run starts (appends,
# ndjson batches, imports, drainers, followers, relays, rebuilds, resets, retries, delete and
# re-create), as plain dicts with a start offset "t" in seconds. Pure: no process is started here.
import random
import uuid

# Queues of a run. "ordq" and "acctq" feed the logging handler, "relay" copies events into a
# second store, "view" keeps a query db up to date through a projection. "leaseq" also feeds the
# logging handler, but no administrative command and no fault but the lease probes (faults.py)
# touch it: a probe pauses one of its drainers mid-handler past its --ack-timeout, lets the other
# take the batch over, then continues it, so its late ack lands while the takeover still runs.
QUEUES = {
    "view": {"args": ["--from", "start", "--max-attempts", "50", "--ack-timeout", "3s"],
             "mode": "projection", "max_attempts": 50, "ack_ms": 3000, "poison": "block",
             "category": None, "types": None},
    "ordq": {"args": ["--from", "start", "--category", "ord", "--max-attempts", "3", "--ack-timeout", "2s"],
             "mode": "exec", "max_attempts": 3, "ack_ms": 2000, "poison": "block",
             "category": "ord", "types": None},
    "acctq": {"args": ["--from", "start", "--category", "acct", "--max-attempts", "2", "--ack-timeout", "2s",
                       "--on-poison", "park"],
              "mode": "exec", "max_attempts": 2, "ack_ms": 2000, "poison": "park",
              "category": "acct", "types": None},
    "relay": {"args": ["--from", "start", "--category", "ord", "--type", "Added", "--max-attempts", "50",
                       "--ack-timeout", "3s"],
              "mode": "relay", "max_attempts": 50, "ack_ms": 3000, "poison": "block",
              "category": "ord", "types": ["Added"]},
    "leaseq": {"args": ["--from", "start", "--category", "ord", "--max-attempts", "50", "--ack-timeout", "2s"],
               "mode": "exec", "max_attempts": 50, "ack_ms": 2000, "poison": "block",
               "category": "ord", "types": None},
}

# Drainers kept running per queue, with their options (the runner restarts one that ends).
DRAINERS = [("view", {}), ("view", {}), ("ordq", {}), ("ordq", {"parallel": 2}),
            ("acctq", {}), ("acctq", {"batch": 3, "pipe": True}), ("relay", {}),
            ("leaseq", {}), ("leaseq", {})]
# ("pipe": a `drain --pipe` handler where esctl has it, else --exec.)

PROJECTION = """-- @init
CREATE TABLE acc (stream TEXT PRIMARY KEY, total INTEGER NOT NULL, cnt INTEGER NOT NULL, last INTEGER NOT NULL);

-- @on Added
INSERT INTO acc (stream, total, cnt, last) VALUES (:stream, :data ->> '$.n', 1, :version)
ON CONFLICT(stream) DO UPDATE SET total = total + excluded.total, cnt = cnt + 1, last = excluded.last;

-- @on Removed
UPDATE acc SET total = total - (:data ->> '$.n'), cnt = cnt + 1, last = :version WHERE stream = :stream;
"""

# The operations that append: single appends, `append --ndjson` batches, imports.
WRITES = ("append", "append_batch", "import")

ORD_STREAMS = [f"ord-{i}" for i in range(3)]
ACCT_STREAMS = [f"acct-{i}" for i in range(4)]

# Relative weights of the operations the schedule draws.
WEIGHTS = {
    "append": 30, "append_batch": 12, "import": 6, "follower": 1, "rebuild_queue": 6,
    "rebuild_pair": 4, "rebuild_race": 2, "rebuild_plain": 1, "reset": 1, "retry": 2, "recreate": 1,
}


def _event(rng, op_id, i, stream):
    typ = rng.choices(["Added", "Removed", "Noted"], [6, 2, 1])[0]
    data = {"op": op_id, "i": i, "n": rng.randint(1, 9)}
    if rng.random() < 0.06:
        # ord streams block behind a parked event, so their poison always heals within 3 attempts.
        data["poison"] = rng.choice([1, 2]) if stream.startswith("ord") else rng.choice([1, 9])
    return {"stream": stream, "type": typ, "data": data}


def _stream(rng):
    return rng.choice(ORD_STREAMS + ACCT_STREAMS + ["misc-0"])


def plan(seed, seconds):
    """The operations of a run: a list of dicts sorted by "t", each with a unique "id"."""
    rng = random.Random(f"workload/{seed}")
    ops = []
    n = [0]

    def add(t, kind, **kw):
        n[0] += 1
        ops.append(dict(kw, id=f"o{n[0]}", kind=kind, t=round(t, 3)))

    for q, opts in DRAINERS:
        add(0.0, "drainer", queue=q, **opts)
    add(0.0, "follower", filter=["--all"])
    add(0.0, "follower", filter=["--category", "ord"])
    kinds, weights = zip(*WEIGHTS.items())
    t = 0.3
    while t < seconds:
        kind = rng.choices(kinds, weights)[0]
        oid = f"o{n[0] + 1}"
        if kind == "append":
            add(t, kind, events=[_event(rng, oid, 0, _stream(rng))])
        elif kind == "append_batch":
            s = _stream(rng)
            add(t, kind, stream=s, events=[_event(rng, oid, i, s) for i in range(rng.randint(2, 12))])
        elif kind == "import":
            evs = [_event(rng, oid, i, _stream(rng)) for i in range(rng.randint(5, 60))]
            for e in evs:  # import is idempotent by id: its events carry theirs
                e["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            add(t, kind, events=evs, batch=rng.choice([1, 7, 1000]))
        elif kind == "follower":
            add(t, kind, filter=rng.choice([["--all"], ["--category", "acct"]]))
        elif kind == "rebuild_queue":
            add(t, "rebuild", queue="view")
        elif kind == "rebuild_pair":
            add(t, "rebuild", queue="view")
            add(t + rng.uniform(0.05, 0.6), "rebuild", queue="view")
        elif kind == "rebuild_race":
            # Two rebuilds interleaved by the runner (run's step_race): the second starts while
            # the first is paused after reading the head, and renames before the first does.
            a, b = f"o{n[0] + 1}", f"o{n[0] + 2}"
            add(t, "rebuild", queue="view", race="first", race_with=b)
            add(t, "rebuild", queue="view", race="second", race_with=a)
        elif kind == "rebuild_plain":
            add(t, "rebuild", queue=None)
        elif kind == "reset":
            add(t, "reset", queue="acctq")
        elif kind == "retry":
            add(t, "retry", queue=rng.choice(["acctq", "ordq"]))
        elif kind == "recreate":
            add(t, "recreate", queue="ordq")
        t += rng.expovariate(1 / 0.12)
    # The closing pair: a raced rebuild pair after everything else (the runner starts it once no
    # other rebuild runs), so that nothing rebuilds the view after it. It draws nothing from the
    # seed's random sequences: the schedule before it is the same with it or without.
    a, b = f"o{n[0] + 1}", f"o{n[0] + 2}"
    end = max([seconds] + [o["t"] for o in ops])  # a pair's second rebuild may be planned past the end
    add(end, "rebuild", queue="view", race="first", race_with=b, closing=True)
    add(end, "rebuild", queue="view", race="second", race_with=a, closing=True)
    ops.sort(key=lambda o: o["t"])
    return ops
