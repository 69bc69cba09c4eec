#!/usr/bin/env python3
# The chaos harness's queue handler: run by `queue drain --exec` per batch, it logs a start and
# an end line per event (wall time, drainer, attempt, lease) to $CHAOS_HANDLER_LOG, sleeps, and
# fails the batch when an event's data asks to ("poison": N fails attempts 1..N).
# `handler.py relay ESCTL STORE` also imports the batch into STORE (a relay between stores).
# `handler.py pipe` is a long-lived `drain --pipe` handler: one answer line (ack or nack) per event.
import json
import os
import random
import sys
import time


def log(f, rec):
    # One write(2) per line on an O_APPEND descriptor: lines of concurrent handlers never mix.
    os.write(f, (json.dumps(rec, separators=(",", ":")) + "\n").encode())


def pipe():
    f = os.open(os.environ["CHAOS_HANDLER_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    common = {"d": os.environ.get("CHAOS_OP", "?"), "q": os.environ.get("CHAOS_QUEUE", "?")}
    lo, hi = (float(x) for x in os.environ.get("CHAOS_SLEEP", "0.05,0.3").split(","))
    for line in sys.stdin:
        if not line.strip():
            continue
        e = json.loads(line)
        rec = dict(common, h=os.urandom(6).hex(), pos=e["position"], stream=e["stream"], ver=e["version"],
                   att=e.get("attempt"), lease=e.get("lease"))
        log(f, dict(rec, k="hstart", t=time.time()))
        time.sleep(random.Random(f"{e['position']}/{e.get('attempt')}").uniform(lo, hi))
        d = e.get("data")
        ok = not isinstance(d, dict) or e.get("attempt", 1) > d.get("poison", 0)
        log(f, dict(rec, k="hend", ok=ok, t=time.time()))
        sys.stdout.write("ack\n" if ok else "nack poisoned\n")
        sys.stdout.flush()


def main():
    if sys.argv[1:2] == ["pipe"]:
        return pipe()
    raw = sys.stdin.buffer.read()
    lines = [json.loads(x) for x in raw.splitlines() if x.strip()]
    f = os.open(os.environ["CHAOS_HANDLER_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    h = os.urandom(6).hex()
    common = {"d": os.environ.get("CHAOS_OP", "?"), "q": os.environ.get("CHAOS_QUEUE", "?"), "h": h}
    for e in lines:
        log(f, dict(common, k="hstart", pos=e["position"], stream=e["stream"], ver=e["version"],
                    att=e.get("attempt"), lease=e.get("lease"), t=time.time()))
    lo, hi = (float(x) for x in os.environ.get("CHAOS_SLEEP", "0.05,0.3").split(","))
    rng = random.Random(f"{lines[0]['position'] if lines else 0}/{lines[0].get('attempt') if lines else 0}")
    # A redelivery takes longer (a slow retry path): it widens the window in which a paused
    # drainer that wakes up could start the stream's next event while this one is still held.
    redelivery = any((e.get("attempt") or 1) > 1 for e in lines)
    time.sleep(rng.uniform(hi, 2 * hi + 0.5) if redelivery and hi >= 0.5 else rng.uniform(lo, hi))
    ok = all(e.get("attempt", 1) > (e.get("data") or {}).get("poison", 0)
             if isinstance(e.get("data"), dict) else True for e in lines)
    if ok and len(sys.argv) >= 4 and sys.argv[1] == "relay":
        import subprocess  # only here: a handler starts once per batch, and this import is slow
        r = subprocess.run([sys.argv[2], "--store", sys.argv[3], "-q", "import", "--ignore-versions", "-"],
                           input=raw, capture_output=True)
        ok = r.returncode == 0
    t = time.time()
    for e in lines:
        log(f, dict(common, k="hend", pos=e["position"], stream=e["stream"], ver=e["version"],
                    att=e.get("attempt"), lease=e.get("lease"), ok=ok, t=t))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
