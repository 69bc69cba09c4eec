# The chaos harness's faults: from the same seed as the workload, which operations get killed
# (kill -9), interrupted (SIGINT), paused (SIGSTOP, then SIGCONT after a while, past the queue's
# --ack-timeout for drainers) or started under a file size limit (`ulimit -f`), and when the
# store's lock is held by another process; and the lease probes: pause a drainer of "leaseq" once
# its handler has logged a start (so it holds a lease), until another drainer has taken the
# batch over, then continue it (the runner keeps other pauses and lock holds off meanwhile, so
# the checker can judge the fencing); and, for a PostgreSQL store whose server the run may
# restart, when it restarts it (every connection of every esctl is cut). Pure planning, plus the
# helpers that apply them.
import os
import random
import signal
import subprocess

SIG = {"kill": signal.SIGKILL, "int": signal.SIGINT, "stop": signal.SIGSTOP, "cont": signal.SIGCONT}


def plan(seed, ops, seconds):
    """Attaches a "fault" to some ops (in place) and returns the timed faults: lock holds and
    faults aimed at whichever drainer of a queue is running at that moment."""
    rng = random.Random(f"faults/{seed}")
    for op in ops:
        if op.get("closing"):
            continue  # the closing raced pair (workload.py): the runner's pauses only, no draw
        r = rng.random()
        if op["kind"] in ("append", "append_batch", "import"):
            if r < 0.07:
                op["fault"] = {"kind": "kill", "after": round(rng.uniform(0.0, 0.06), 3)}
            elif r < 0.10:
                op["fault"] = {"kind": "int", "after": round(rng.uniform(0.0, 0.06), 3)}
            elif r < 0.15:
                op["fault"] = {"kind": "fsize", "extra_kib": rng.randint(0, 48)}
        elif op["kind"] == "rebuild" and not op.get("race"):  # a raced pair's pauses are the runner's
            if r < 0.45:
                op["fault"] = {"kind": "stop", "after": round(rng.uniform(0.0, 0.3), 3),
                               "for": round(rng.uniform(0.8, 3.0), 3)}
            elif r < 0.45:
                op["fault"] = {"kind": "kill", "after": round(rng.uniform(0.0, 0.3), 3)}
            elif r < 0.50:
                op["fault"] = {"kind": "int", "after": round(rng.uniform(0.0, 0.3), 3)}
            elif r < 0.55:
                op["fault"] = {"kind": "fsize", "extra_kib": rng.randint(0, 256)}
    timed = []
    t = 1.0
    while t < seconds:
        kind = rng.choices(["stop", "kill", "int"], [5, 2, 2])[0]
        queue = rng.choice(["ordq", "ordq", "acctq", "acctq", "view", "relay"] if kind != "stop" else
                           ["ordq", "ordq", "ordq", "acctq", "acctq", "acctq", "view", "relay"])
        f = {"t": round(t, 3), "kind": kind, "queue": queue, "pick": rng.randrange(1000)}
        if kind == "stop":
            f["for"] = round(rng.uniform(2.5, 7.0), 3)  # past the lease, into the next holder's handler
        timed.append(f)
        t += rng.expovariate(1 / 1.3)
    t = 2.0
    while t < seconds:
        timed.append({"t": round(t, 3), "kind": "lock", "for": round(rng.uniform(0.3, 6.5), 3)})
        t += rng.expovariate(1 / 7.0)
    t = 0.8
    while t < seconds:
        timed.append({"t": round(t, 3), "kind": "probe", "queue": "leaseq", "pick": rng.randrange(1000)})
        t += 5.0 + rng.expovariate(1 / 2.0)  # a probe lasts about 5 s
    timed += restarts(seed, seconds)
    timed.sort(key=lambda f: f["t"])
    return timed


def restarts(seed, seconds):
    """Server restarts, from the same seed but a sequence of their own: a run that cannot restart
    its server (a SQLite store, a URI without a restart command) skips them and keeps the very
    schedule it had before restarts existed. About one every 4 s, the first after 1.5-3 s."""
    rng = random.Random(f"restarts/{seed}")
    out = []
    t = rng.uniform(1.5, 3.0)
    while t < seconds:
        out.append({"t": round(t, 3), "kind": "restart"})
        t += 2.0 + rng.expovariate(1 / 2.0)
    return out


def signal_pid(pid, kind):
    """Sends the fault's signal to one process (never its group: a paused drainer's handler
    runs on, as it would when only the drainer is stopped). False if it is gone."""
    try:
        os.kill(pid, SIG[kind])
        return True
    except ProcessLookupError:
        return False


def fsize_blocks(store, extra_kib):
    """A file size limit (in the 512-byte blocks of sh's `ulimit -f`) a little above the
    store's biggest file, so that the next writes that grow it fail."""
    biggest = 0
    for suffix in ("", "-wal"):
        try:
            biggest = max(biggest, os.path.getsize(store + suffix))
        except OSError:
            pass
    return (biggest + extra_kib * 1024) // 512 + 1


def restart_server(cmd):
    """Runs the shell command CMD that restarts the store's server and returns once it is back
    (as `pg_ctl restart -w` does): (exit status, the end of its stderr)."""
    p = subprocess.run(["/bin/sh", "-c", cmd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, start_new_session=True)
    return p.returncode, p.stderr.decode(errors="replace")[-300:]


def hold_lock(store, seconds):
    """Starts a sqlite3 shell that holds the store's write lock for SECONDS; returns the Popen."""
    script = f".timeout 10000\nBEGIN IMMEDIATE;\n.shell sleep {seconds}\nROLLBACK;\n"
    p = subprocess.Popen(["sqlite3", store], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    p.stdin.write(script.encode())
    p.stdin.close()
    return p
