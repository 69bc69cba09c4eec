# The chaos harness's history: one NDJSON record per thing that happened, with wall times
# (time.time()): each operation's invocation ("invoke") and outcome ("complete": exit status,
# output), each fault applied ("fault"), each handler's start and end per event and attempt
# ("hstart"/"hend", written by handler.py), and at the end the final state ("final").
import json
import threading
import time


class History:
    """Appends records to a file as they happen (a cut run keeps what it had)."""

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self._f = open(path, "a", encoding="utf-8")

    def add(self, rec_kind, /, **fields):
        rec = dict(fields, k=rec_kind)
        rec.setdefault("t", time.time())
        with self._lock:
            self._f.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self._f.flush()
        return rec

    def close(self):
        self._f.close()


def load(*paths):
    """Every record of the files given (history, handler log), sorted by time."""
    recs = []
    for p in paths:
        try:
            with open(p, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if line:
                        try:
                            recs.append(json.loads(line))
                        except ValueError:
                            pass  # a line cut by a kill -9 of its writer
        except FileNotFoundError:
            pass
    recs.sort(key=lambda r: r.get("t", 0))
    return recs


def around(recs, t, seconds=1.5, limit=40, keep=None):
    """The records within SECONDS of time T (the minimal history shown with a violation),
    optionally only those KEEP accepts."""
    near = [r for r in recs if abs(r.get("t", 0) - t) <= seconds and (keep is None or keep(r))]
    if len(near) > limit:
        near.sort(key=lambda r: abs(r.get("t", 0) - t))
        near = sorted(near[:limit], key=lambda r: r.get("t", 0))
    return near
