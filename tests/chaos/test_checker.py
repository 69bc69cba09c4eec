# Unit tests of the chaos harness: hand-made histories, one per kind of violation, must be
# reported; clean ones (including ones where a fault makes an outcome legitimately uncertain)
# must not; a seed fixes the plans; history round-trips. Run: python3 tests/chaos/test_checker.py
import copy
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checker  # noqa: E402
import faults  # noqa: E402
import history  # noqa: E402
import workload  # noqa: E402

CFG = {"mode": "exec", "max_attempts": 3, "ack_ms": 2000, "poison": "block", "category": "ord", "types": None}


def ev(pos, stream, ver, op="o1", i=0, typ="Added"):
    return {"position": pos, "stream": stream, "version": ver, "id": f"id-{pos}", "type": typ,
            "data": {"op": op, "i": i, "n": 1}}


class H:
    """A small history: two appends of ord-1@0,1 and one delivery each by drainer d1."""

    def __init__(self):
        self.recs = []
        self.events = [ev(1, "ord-1", 0, "a1"), ev(2, "ord-1", 1, "a2")]
        self.queue_status = {"lag": 0, "leased": 0, "retrying": 0, "parked": 0}
        self.parked = []
        self.invoke("create", -10.0, queue="q")
        self.complete("create", -9.9, 0)
        self.invoke("d1", 0.2, kind="drainer", queue="q")
        for n, (op, e) in enumerate((("a1", self.events[0]), ("a2", self.events[1]))):
            self.invoke(op, 1.0 + n, kind="append", events=[{"stream": "ord-1", "type": "Added", "data": e["data"]}])
            self.complete(op, 1.1 + n, 0, acked=[{k: e[k] for k in ("stream", "version", "position", "id")}])
        self.deliver("d1", "h1", 1, 0, 3.0, 3.5)
        self.deliver("d1", "h2", 2, 1, 4.0, 4.5)
        self.complete("d1", 9.0, 130)
        self.extra = {}

    def invoke(self, op, t, kind="create", **kw):
        self.recs.append(dict(kw, k="invoke", op=op, kind=kind, t=t))

    def complete(self, op, t, rc, **kw):
        self.recs.append(dict(kw, k="complete", op=op, rc=rc, t=t))

    def deliver(self, d, h, pos, ver, ts, te, ok=True, att=1, stream="ord-1", q="q", lease=None):
        self.recs.append({"k": "hstart", "d": d, "h": h, "q": q, "pos": pos, "stream": stream, "ver": ver,
                          "att": att, "lease": lease, "t": ts})
        if te is not None:
            self.recs.append({"k": "hend", "d": d, "h": h, "q": q, "pos": pos, "stream": stream, "ver": ver,
                              "att": att, "lease": lease, "ok": ok, "t": te})

    def fault(self, op, kind, t, end=None):
        r = {"k": "fault", "op": op, "kind": kind, "t": t}
        if end is not None:
            r["end"] = end
        self.recs.append(r)

    def check(self):
        final = {"k": "final", "t": 20.0, "events": self.events,
                 "queues": {"q": {"cfg": CFG, "status": self.queue_status, "parked": self.parked}},
                 "verify": {"store": 0}}
        final.update(self.extra)
        recs = sorted(copy.deepcopy(self.recs) + [final], key=lambda r: r["t"])
        return [v["check"] for v in checker.check_all(recs)[0]]


class Clean(unittest.TestCase):
    def test_clean_history_has_no_violation(self):
        self.assertEqual(H().check(), [])

    def test_no_final_state_is_reported(self):
        self.assertEqual([v["check"] for v in checker.check_all([])[0]], ["final"])


class Appends(unittest.TestCase):
    def test_acknowledged_append_lost(self):
        h = H()
        h.events = h.events[:1]
        h.deliver  # the second event is gone from the store
        self.assertIn("append-lost", h.check())

    def test_acknowledged_append_moved(self):
        h = H()
        h.events[1] = dict(h.events[1], version=5)
        self.assertIn("append-moved", h.check())

    def test_event_stored_twice(self):
        h = H()
        h.events.append(dict(ev(3, "misc-0", 0, "a2")))
        self.assertIn("append-duplicated", h.check())

    def test_failed_append_left_events(self):
        h = H()
        h.invoke("a3", 5.0, kind="append", events=[{"stream": "misc-0", "type": "Added", "data": {}}])
        h.complete("a3", 5.1, 3)
        h.events.append(ev(3, "misc-0", 0, "a3"))
        self.assertIn("append-partial", h.check())

    def test_failed_import_keeps_its_whole_batches_only(self):
        h = H()
        h.invoke("i1", 5.0, kind="import", batch=2, events=[{}, {}, {}, {}])
        h.recs.append({"k": "fault", "kind": "lock", "t": 5.0, "end": 5.1})
        h.complete("i1", 5.1, 7)
        h.events += [ev(3, "misc-0", 0, "i1", 0), ev(4, "misc-0", 1, "i1", 1)]
        self.assertEqual(h.check(), [])
        h.events.append(ev(5, "misc-0", 2, "i1", 2))
        self.assertIn("append-partial", h.check())

    def test_killed_append_may_or_may_not_have_committed(self):
        h = H()
        h.invoke("a3", 5.0, kind="append", events=[{"stream": "misc-0", "type": "Added", "data": {}}])
        h.fault("a3", "kill", 5.01)
        h.complete("a3", 5.1, -9)
        h.events.append(ev(3, "misc-0", 0, "a3"))
        self.assertEqual(h.check(), [])


LOST = ("esctl: error: lost the connection to the PostgreSQL server of 'postgresql://esctl@/postgres' (statement): "
        "terminating connection due to administrator command")
UNKNOWN = ("esctl: error: lost the connection to the PostgreSQL server of 'postgresql://esctl@/postgres' before it "
           "confirmed the commit: the outcome is unknown (the write may or may not be stored)")


def restart(h, t0, t1, rc=0):
    h.recs.append({"k": "fault", "kind": "restart", "t": t0, "end": t1, "rc": rc})


class ServerRestarts(unittest.TestCase):
    """A PostgreSQL server restarted under the run: every connection is cut."""

    def append(self, h, op, t, rc, err, n=1, kind="append", batch=1):
        evs = [{"stream": "misc-0", "type": "Added", "data": {"op": op, "i": i}} for i in range(n)]
        h.invoke(op, t, kind=kind, events=evs, batch=batch)
        h.complete(op, t + 0.2, rc, err=err)

    def test_a_write_whose_commit_was_cut_may_or_may_not_be_stored_but_once(self):
        h = H()
        restart(h, 5.0, 6.0)
        self.append(h, "a3", 5.1, 1, UNKNOWN)
        self.append(h, "a4", 5.2, 1, UNKNOWN)
        h.events.append(ev(3, "misc-0", 0, "a3"))
        self.assertEqual(h.check(), [])
        h.events.append(ev(4, "misc-0", 1, "a3"))  # stored twice
        self.assertIn("append-duplicated", h.check())

    def test_a_write_cut_before_its_commit_left_nothing(self):
        h = H()
        restart(h, 5.0, 6.0)
        self.append(h, "a3", 5.1, 1, LOST)
        self.assertEqual(h.check(), [])
        h.events.append(ev(3, "misc-0", 0, "a3"))
        self.assertIn("append-partial", h.check())

    def test_exit_1_only_while_the_server_restarts_and_saying_so(self):
        h = H()
        self.append(h, "a3", 5.1, 1, LOST)
        self.assertIn("unexpected-exit", h.check())  # no restart then
        restart(h, 5.0, 6.0)
        self.assertEqual(h.check(), [])
        h.recs[-2]["err"] = "esctl: error: disk I/O error"
        self.assertIn("unexpected-exit", h.check())  # not about the connection

    def test_a_batch_of_unknown_outcome_is_stored_whole_or_not_at_all(self):
        h = H()
        restart(h, 5.0, 6.0)
        self.append(h, "b1", 5.1, 1, UNKNOWN, n=3, kind="append_batch")
        h.events += [ev(3, "misc-0", 0, "b1", 0), ev(4, "misc-0", 1, "b1", 1)]
        self.assertIn("append-atomic", h.check())
        h.events.append(ev(5, "misc-0", 2, "b1", 2))
        self.assertEqual(h.check(), [])

    def test_an_import_of_unknown_outcome_keeps_whole_batches_from_its_start(self):
        h = H()
        restart(h, 5.0, 6.0)
        self.append(h, "i1", 5.1, 1, UNKNOWN, n=5, kind="import", batch=2)
        h.events += [ev(3, "misc-0", 0, "i1", 0), ev(4, "misc-0", 1, "i1", 1)]
        self.assertEqual(h.check(), [])
        h.events.append(ev(5, "misc-0", 2, "i1", 2))
        self.assertIn("append-atomic", h.check())
        h.events += [ev(6, "misc-0", 3, "i1", 3), ev(7, "misc-0", 4, "i1", 4)]
        self.assertEqual(h.check(), [])  # all of it, its last batch short

    def test_a_killed_batch_is_atomic_too(self):
        h = H()
        self.append(h, "b1", 5.1, -9, "", n=3, kind="append_batch")
        h.fault("b1", "kill", 5.2)
        h.events.append(ev(3, "misc-0", 1, "b1", 1))
        self.assertIn("append-atomic", h.check())

    def test_a_drainer_reconnects_and_may_fail_only_while_it_opens_its_store(self):
        h = H()
        restart(h, 5.0, 6.0)
        h.invoke("d2", 0.5, kind="drainer", queue="q")
        h.complete("d2", 5.5, 1, err=LOST)
        self.assertIn("unexpected-exit", h.check())  # running for 4.5 s: it must have reconnected
        for r in h.recs:
            if r.get("op") == "d2" and r["k"] == "invoke":
                r["t"] = 4.9  # still starting when the server went down
        self.assertEqual(h.check(), [])

    def test_a_takeover_while_the_lease_keeper_was_cut_off_is_not_fencing(self):
        h = Fencing().stale_ack()
        h.recs = [r for r in h.recs if not (r.get("k") == "fault" and r.get("op") == "d1")]
        self.assertIn("fencing", h.check())
        restart(h, 4.0, 5.0)
        self.assertNotIn("fencing", h.check())

    def test_a_reset_of_unknown_outcome_begins_no_certain_life(self):
        h = H()
        restart(h, 5.0, 6.0)
        h.invoke("r1", 5.1, kind="reset", queue="q")
        h.complete("r1", 5.2, 1, err=UNKNOWN)
        self.assertEqual(h.check(), [])  # nothing delivered after it: it did not take effect, or it did ...
        h.recs[-1]["rc"] = 0
        self.assertIn("acked-undelivered", h.check())  # ... but a reset that did asks for every event again

    def test_a_recreate_of_unknown_outcome_may_not_have_deleted_the_queue(self):
        h = H()
        restart(h, 5.0, 6.0)
        h.invoke("rc", 5.1, kind="recreate", queue="q")
        h.complete("rc", 5.3, 1, delete_rc=1, err=UNKNOWN)
        h.deliver("d1", "h3", 1, 0, 9.0, 9.2, att=2)  # past the grace after it
        h.deliver("d1", "h3", 2, 1, 9.0, 9.2, att=2)
        self.assertNotIn("deleted-queue-drainer", h.check())
        next(r for r in h.recs if r["k"] == "complete" and r["op"] == "rc")["delete_rc"] = 0
        self.assertIn("deleted-queue-drainer", h.check())

    def test_a_queue_left_deleted_by_a_recreate_cut_between_delete_and_create(self):
        h = H()
        restart(h, 5.0, 6.0)
        h.invoke("rc", 5.0, kind="recreate", queue="q")
        h.complete("rc", 5.3, 1, delete_rc=0, err=LOST)
        h.invoke("d2", 7.0, kind="drainer", queue="q")
        h.complete("d2", 7.2, 4, err="esctl: error: queue 'q' not found (see 'esctl queue ls')")
        self.assertNotIn("unexpected-exit", h.check())
        h.invoke("rc2", 6.5, kind="recreate", queue="q")  # its create ends after d2 started
        h.complete("rc2", 7.5, 0, delete_rc=4)
        self.assertNotIn("unexpected-exit", h.check())
        h.recs[-1]["t"] = 6.9  # created again before d2 started: the queue was there for it
        self.assertIn("unexpected-exit", h.check())

    def test_a_restart_that_failed_voids_the_run(self):
        h = H()
        restart(h, 5.0, 6.0, rc=1)
        self.assertIn("restart", h.check())


class Exits(unittest.TestCase):
    def test_drainer_failing_on_its_own_is_reported(self):
        h = H()
        h.invoke("d2", 5.0, kind="drainer", queue="q")
        h.complete("d2", 6.0, 1, err="disk I/O error (No such file or directory)")
        self.assertIn("unexpected-exit", h.check())

    def test_killed_drainer_is_not(self):
        h = H()
        h.invoke("d2", 5.0, kind="drainer", queue="q")
        h.fault("d2", "kill", 5.5)
        h.complete("d2", 5.6, -9)
        self.assertEqual(h.check(), [])

    def test_drainer_of_a_queue_deleted_by_a_recreate_whose_create_failed(self):
        h = H()
        h.recs.append({"k": "fault", "kind": "lock", "t": 3.0, "end": 9.0})
        h.invoke("rc", 3.6, kind="recreate", queue="q")
        h.complete("rc", 9.1, 7, delete_rc=0, err="esctl: error: store 'store.db' is busy")
        h.invoke("d2", 3.0, kind="drainer", queue="q")
        h.complete("d2", 5.0, 4, err="esctl: error: queue 'q' was deleted under this drain")
        got = h.check()
        self.assertNotIn("unexpected-exit", got)
        for r in h.recs:
            if r.get("op") == "rc" and r["k"] == "complete":
                r["delete_rc"] = 7  # its delete gave up too: nothing deleted the queue under d2
        self.assertIn("unexpected-exit", h.check())

    def test_busy_is_allowed_only_while_a_lock_is_held(self):
        h = H()
        h.invoke("a3", 5.0, kind="append", events=[])
        h.complete("a3", 10.1, 7)
        self.assertIn("unexpected-exit", h.check())
        h.recs.append({"k": "fault", "kind": "lock", "t": 5.0, "end": 10.0})
        self.assertEqual(h.check(), [])


class Fencing(unittest.TestCase):
    def stale_ack(self):
        """Defect (a): d1 is paused holding ord-1@0, d2 gets it, d1 resumes and starts ord-1@1
        while d2's handler of ord-1@0 still runs."""
        h = H()
        h.recs = [r for r in h.recs if r.get("k") not in ("hstart", "hend")]
        h.invoke("d2", 0.3, kind="drainer", queue="q")
        h.deliver("d1", "h1", 1, 0, 3.0, 3.5)
        h.fault("d1", "stop", 3.2, end=7.0)
        h.deliver("d2", "h2", 1, 0, 6.0, 8.0, att=2)
        h.deliver("d1", "h3", 2, 1, 7.1, 7.3)
        h.complete("d2", 9.1, 130)
        return h

    def test_later_event_started_while_earlier_held_is_reported(self):
        self.assertIn("fencing", self.stale_ack().check())

    def test_one_violation_per_pair_of_handler_runs(self):
        h = self.stale_ack()
        h.deliver("d1", "h3", 3, 2, 7.1, 7.3)  # the late batch holds ord-1@1 and ord-1@2
        got = h.check()
        self.assertEqual(got.count("fencing"), 1)
        h.deliver("d1", "h4", 4, 3, 7.4, 7.6)  # and the next batch starts while d2 still holds ord-1@0
        self.assertEqual(h.check().count("fencing"), 2)

    def test_not_when_the_holders_drainer_reported_a_stale_outcome(self):
        h = self.stale_ack()
        h.recs[-1]["stale"] = 1  # d2's completion: the store refused one of its outcomes as stale
        self.assertNotIn("fencing", h.check())
        h.recs[-1]["stale"] = 0
        self.assertIn("fencing", h.check())

    def test_not_when_the_holder_was_paused(self):
        h = self.stale_ack()
        h.fault("d2", "stop", 6.5, end=9.0)
        self.assertNotIn("fencing", h.check())

    def test_not_when_the_holder_was_paused_as_the_runner_records_it(self):
        h = self.stale_ack()
        h.fault("d2", "stop", 6.5)
        h.fault("d2", "stop_end", 9.0)
        self.assertNotIn("fencing", h.check())

    def test_a_pause_long_before_does_not_excuse_it(self):
        h = self.stale_ack()
        h.fault("d2", "stop", 0.5)
        h.fault("d2", "stop_end", 1.0)
        self.assertIn("fencing", h.check())

    def test_not_when_the_store_lock_was_held(self):
        h = self.stale_ack()
        h.recs.append({"k": "fault", "kind": "lock", "t": 5.0, "end": 6.5})
        self.assertNotIn("fencing", h.check())

    def test_not_when_another_process_was_paused_while_x_held_it(self):
        h = self.stale_ack()
        h.invoke("r9", 6.0, kind="rebuild", queue="view")
        h.fault("r9", "stop", 6.2, end=9.0)
        h.complete("r9", 9.5, 0)
        self.assertNotIn("fencing", h.check())

    def test_busy_is_allowed_while_some_esctl_is_paused(self):
        h = H()
        h.invoke("r9", 5.0, kind="rebuild", queue="view")
        h.fault("r9", "stop", 5.1, end=11.0)
        h.complete("r9", 11.5, 0)
        h.invoke("a3", 5.5, kind="append", events=[])
        h.complete("a3", 10.6, 7)
        self.assertEqual(h.check(), [])

    def test_not_across_a_reset(self):
        h = self.stale_ack()
        h.invoke("r1", 6.5, kind="reset", queue="q")
        h.complete("r1", 6.6, 0)
        self.assertNotIn("fencing", h.check())

    def test_one_handler_may_hold_several_events_of_a_stream(self):
        h = H()
        h.recs = [r for r in h.recs if r.get("k") not in ("hstart", "hend")]
        h.deliver("d1", "h1", 1, 0, 3.0, 3.5)
        h.deliver("d1", "h1", 2, 1, 3.0, 3.5)
        self.assertEqual(h.check(), [])

    def test_not_when_the_later_batch_holds_the_earlier_event_too(self):
        h = self.stale_ack()
        h.deliver("d1", "h3", 1, 0, 7.1, 7.3)
        self.assertNotIn("fencing", h.check())

    def test_paused_drainer_running_its_expired_batch_again_is_not_reported(self):
        h = H()
        h.invoke("d2", 0.3, kind="drainer", queue="q")
        h.fault("d2", "stop", 0.5, end=3.1)
        h.deliver("d2", "h9", 1, 0, 3.2, 3.4)
        h.complete("d2", 9.1, 130)
        self.assertNotIn("fencing", h.check())

    def test_same_event_redelivered_while_lease_current(self):
        h = H()
        h.invoke("d2", 0.3, kind="drainer", queue="q")
        h.deliver("d2", "h9", 1, 0, 3.2, 3.4)
        h.complete("d2", 9.1, 130)
        self.assertIn("fencing", h.check())


class Queues(unittest.TestCase):
    def test_first_deliveries_out_of_order(self):
        h = H()
        h.recs = [r for r in h.recs if r.get("k") not in ("hstart", "hend")]
        h.deliver("d1", "h1", 2, 1, 3.0, 3.5)
        h.deliver("d1", "h2", 1, 0, 4.0, 4.5)
        self.assertIn("order", h.check())

    def test_retry_is_not_a_new_life_of_the_queue(self):
        h = H()
        h.recs = [r for r in h.recs if r.get("k") not in ("hstart", "hend")]
        h.deliver("d1", "h1", 1, 0, 3.0, 3.5)
        h.invoke("rt", 3.6, kind="retry", queue="q")
        h.complete("rt", 3.7, 0)
        h.deliver("d1", "h2", 2, 1, 7.0, 7.5)
        h.deliver("d1", "h3", 1, 0, 8.0, 8.5)
        self.assertEqual(h.check(), [])
        h.recs = [r for r in h.recs if r.get("h") != "h1"]
        self.assertIn("order", h.check())  # under block, a retried event never comes after a later one

    def reset_with_a_late_old_lease(self):
        """d1 leased ord-1@1 (lease 6) ahead before a reset re-based the queue (lease counter 6
        before it, 7 after), but its handler only started long after the reset; meanwhile d2
        drains the new life from ord-1@0 (leases 8 and 9)."""
        h = H()
        h.recs = [r for r in h.recs if r.get("k") not in ("hstart", "hend")]
        h.invoke("d2", 0.3, kind="drainer", queue="q")
        h.deliver("d1", "h1", 1, 0, 3.0, 3.5, lease=5)
        h.invoke("r1", 4.0, kind="reset", queue="q", lease_before=6)
        h.complete("r1", 4.1, 0, lease_after=7)
        h.deliver("d1", "h2", 2, 1, 9.0, 9.5, att=2, lease=6)  # 4.9 s after the reset
        h.deliver("d2", "h3", 1, 0, 10.0, 10.5, lease=8)
        h.deliver("d2", "h4", 2, 1, 11.0, 11.5, lease=9)
        h.complete("d2", 12.0, 130)
        return h

    def test_a_reset_ends_the_leases_before_it_however_late_their_handlers_start(self):
        self.assertEqual(self.reset_with_a_late_old_lease().check(), [])

    def test_order_after_a_reset_is_still_judged(self):
        h = self.reset_with_a_late_old_lease()
        for r in h.recs:  # the new life's leases hand ord-1@1 out before ord-1@0
            if r.get("h") == "h3":
                r["t"] += 2.0
        self.assertIn("order", h.check())

    def test_a_late_old_lease_is_not_judged_when_the_counter_was_not_read(self):
        h = self.reset_with_a_late_old_lease()
        for r in h.recs:
            r.pop("lease_before", None)
            r.pop("lease_after", None)
        self.assertIn("order", h.check())  # by time alone, 4.9 s is past the grace: judged (wrongly)
        for r in h.recs:
            if r.get("h") == "h2":
                r["t"] -= 3.0  # within the grace after the reset: not judged
        self.assertEqual(h.check(), [])

    def test_a_lease_drawn_while_the_reset_ran_is_not_judged(self):
        h = self.reset_with_a_late_old_lease()
        for r in h.recs:
            if r.get("h") == "h2":
                r["lease"] = 7  # drawn between the two reads of the counter: either side
        self.assertEqual(h.check(), [])

    def test_an_old_lease_acked_after_the_reset_is_no_delivery_of_the_new_life(self):
        h = self.reset_with_a_late_old_lease()
        h.recs = [r for r in h.recs if r.get("h") != "h4"]  # ord-1@1 acked, run only under lease 6
        self.assertIn("acked-undelivered", h.check())

    def test_an_old_lease_ended_by_a_reset_holds_nothing(self):
        h = self.reset_with_a_late_old_lease()
        for r in h.recs:
            if r.get("h") == "h2":  # still running when d2 starts ord-1@1 (11.0)
                r["t"] = 9.5 if r["k"] == "hstart" else 12.0
        self.assertNotIn("fencing", h.check())
        for r in h.recs:
            r.pop("lease_before", None)
            r.pop("lease_after", None)
        self.assertIn("fencing", h.check())  # without the counter, by time: judged

    def test_drainer_of_a_deleted_queue_by_its_lease(self):
        h = self.reset_with_a_late_old_lease()
        for r in h.recs:
            if r.get("op") == "r1":
                r["kind"] = "recreate"
            if r.get("op") == "d2" and r["k"] == "invoke":
                r["t"] = 4.5  # started on the new queue
        self.assertNotIn("deleted-queue-drainer", h.check())  # d1's late batch was leased before
        h.deliver("d1", "h5", 1, 0, 5.0, 5.2, lease=10)  # leased from the new queue
        self.assertIn("deleted-queue-drainer", h.check())

    def test_acked_without_delivery_in_the_new_queue(self):
        """Defect (b): the queue is deleted and created again; an old drainer's ack settles an
        event of the new queue that no handler of the new queue ran."""
        h = H()
        h.invoke("rc", 3.8, kind="recreate", queue="q")
        h.complete("rc", 3.9, 0)
        self.assertIn("acked-undelivered", h.check())

    def test_drainer_of_a_deleted_queue_drains_the_new_one(self):
        h = H()
        h.invoke("rc", 3.6, kind="recreate", queue="q")
        h.complete("rc", 3.7, 0)
        h.deliver("d1", "h3", 1, 0, 7.0, 7.2)
        h.deliver("d1", "h3", 2, 1, 7.0, 7.2)
        self.assertIn("deleted-queue-drainer", h.check())

    def test_queue_left_with_work(self):
        h = H()
        h.queue_status = {"lag": 1, "leased": 1, "retrying": 0, "parked": 0}
        self.assertIn("queue-undrained", h.check())

    def test_queue_left_retrying(self):
        h = H()
        h.queue_status = {"lag": 1, "leased": 0, "retrying": 1, "parked": 0}
        self.assertIn("queue-undrained", h.check())

    def test_retrying_behind_a_parked_event_is_fine(self):
        """ord-1@0 failed three times with ord-1@1 in its batch: @0 is parked, @1 failed once
        and stays in retry, held behind @0 (on-poison block)."""
        h = H()
        h.recs = [r for r in h.recs if r.get("k") not in ("hstart", "hend")]
        for a in (1, 2, 3):
            h.deliver("d1", f"hp{a}", 1, 0, 3.0 + a, 3.5 + a, ok=False, att=a)
        h.deliver("d1", "hq1", 2, 1, 4.0, 4.5, ok=False, att=1)
        h.parked = [1]
        h.queue_status = {"lag": 2, "leased": 0, "retrying": 1, "parked": 1}
        self.assertEqual(h.check(), [])
        h.queue_status = {"lag": 2, "leased": 0, "retrying": 2, "parked": 0}  # more than the held ones
        self.assertIn("queue-undrained", h.check())

    def test_parked_before_its_attempts_were_used(self):
        h = H()
        h.parked = [2]
        h.queue_status = {"lag": 1, "leased": 0, "retrying": 0, "parked": 1}
        self.assertIn("parked-early", h.check())

    def test_parked_after_max_attempts_is_fine(self):
        h = H()
        h.recs = [r for r in h.recs if not (r.get("k") in ("hstart", "hend") and r["pos"] == 2)]
        for a in (1, 2, 3):
            h.deliver("d1", f"hp{a}", 2, 1, 4.0 + a, 4.5 + a, ok=False, att=a)
        h.parked = [2]
        h.queue_status = {"lag": 1, "leased": 0, "retrying": 0, "parked": 1}
        self.assertEqual(h.check(), [])


class FinalState(unittest.TestCase):
    def test_query_db_differs_from_fresh_rebuild(self):
        h = H()
        h.extra["view"] = {"db": [["s", 1, 1, 0]], "fresh": [["s", 6, 2, 1]], "parked": []}
        self.assertIn("query-db", h.check())
        h.extra["view"] = {"db": [["s", 6, 2, 1]], "fresh": [["s", 6, 2, 1]], "parked": []}
        self.assertEqual(h.check(), [])

    def test_relay_missing_and_duplicate(self):
        h = H()
        h.recs = [dict(r, q="relay") if r.get("k") in ("hstart", "hend") else r for r in h.recs]
        relay_cfg = dict(CFG, mode="relay")
        h.extra["relay_store"] = [{"id": "id-1"}, {"id": "id-1"}]

        def check():
            final = {"k": "final", "t": 20.0, "events": h.events,
                     "queues": {"relay": {"cfg": relay_cfg, "status": h.queue_status, "parked": []}},
                     "verify": {}, "relay_store": h.extra["relay_store"]}
            return [v["check"] for v in checker.check_all(sorted(h.recs + [final], key=lambda r: r["t"]))[0]]
        got = check()
        self.assertIn("relay-duplicate", got)
        self.assertIn("relay-missing", got)
        h.extra["relay_store"] = [{"id": "id-1"}, {"id": "id-2"}]
        self.assertEqual(check(), [])

    def test_follower_skip_repeat_and_behind(self):
        h = H()
        h.invoke("f1", 0.5, kind="follower", filter=["--all"], to_end=True)
        h.complete("f1", 9.0, 130, lines=[2, 2])
        self.assertIn("follower", h.check())
        h.recs[-1]["lines"] = [1]
        self.assertIn("follower", h.check())  # ran to the end but stopped behind
        h.recs[-1]["lines"] = [1, 2]
        self.assertEqual(h.check(), [])

    def test_verify_failure(self):
        h = H()
        h.extra["verify"] = {"store": 6}
        self.assertIn("verify", h.check())


def load_runner():
    """The `run` script as a module (it has no .py suffix)."""
    import importlib.machinery
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run")
    loader = importlib.machinery.SourceFileLoader("chaos_run", path)
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader("chaos_run", loader))
    loader.exec_module(mod)
    return mod


class LeaseProbe(unittest.TestCase):
    """The runner's lease probe, driven by a handler log written here and fake processes."""

    def setUp(self):
        import json
        import tempfile
        self.json = json
        self.tmp = tempfile.TemporaryDirectory()
        self.r = load_runner().Runner("esctl", self.tmp.name, 1, 10, 0)
        self.sent = []
        self.r.signal = lambda oid, kind, **extra: self.sent.append((oid, kind)) or True

        class P:  # a drainer that keeps running
            pid = 1

            def poll(self):
                return None
        for oid in ("A", "B"):
            self.r.running[oid] = {"p": P(), "op": {"kind": "drainer", "queue": "leaseq", "id": oid}}

    def tearDown(self):
        for t in self.r.stopped.values():
            t.cancel()
        self.r.h.close()
        self.tmp.cleanup()

    def log(self, k, d, h, pos, **kw):
        with open(self.r.hlog, "a") as f:
            f.write(self.json.dumps(dict(kw, k=k, d=d, h=h, q="leaseq", pos=pos, stream="ord-0", ver=pos)) + "\n")

    def step(self, now=100.0):
        self.r.tail_handlers()
        self.r.step_probe(now)

    def test_pauses_a_drainer_running_a_handler_until_another_takes_its_batch_over(self):
        self.r.timed_fault({"kind": "probe", "queue": "leaseq", "pick": 0})
        self.step()
        self.assertEqual(self.sent, [])  # no handler runs yet: nothing to pause
        self.log("hstart", "A", "h1", 1)
        self.log("hstart", "A", "h1", 2)
        self.step()
        self.assertEqual(self.sent, [("A", "stop")])
        self.assertEqual(self.r.probe["held"], {1, 2})
        self.r.timed_fault({"kind": "stop", "queue": "ordq", "pick": 0})  # no other pause meanwhile
        self.r.timed_fault({"kind": "lock", "for": 1.0})
        self.assertEqual((self.sent, self.r.locks), ([("A", "stop")], []))
        self.log("hend", "A", "h1", 1, ok=True)
        self.log("hstart", "B", "h2", 7)  # not A's batch
        self.step()
        self.assertEqual(self.r.probe["state"], "stopped")
        self.log("hstart", "B", "h3", 2, att=2)  # B takes A's batch over: A goes on
        self.step()
        self.assertEqual(self.sent[-1], ("A", "cont"))
        self.assertEqual(self.r.probe["state"], "after")
        self.assertTrue(self.r.quiet("stop"))
        self.log("hend", "B", "h3", 2, ok=True)  # the takeover ended: the probe is over
        self.step()
        self.assertIsNone(self.r.probe)
        self.assertFalse(self.r.quiet("stop"))

    def test_an_armed_probe_holds_back_locks_only_and_gives_up_after_a_while(self):
        self.r.timed_fault({"kind": "probe", "queue": "leaseq", "pick": 0})
        self.assertTrue(self.r.quiet("lock"))
        self.assertFalse(self.r.quiet("stop"))
        self.step(now=self.r.probe["until"] + 1)
        self.assertIsNone(self.r.probe)


class Plans(unittest.TestCase):
    def test_a_seed_fixes_the_schedule_and_its_faults(self):
        a, b, c = workload.plan(5, 30), workload.plan(5, 30), workload.plan(6, 30)
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)
        self.assertEqual(faults.plan(5, a, 30), faults.plan(5, b, 30))
        self.assertEqual(a, b)  # with the same faults attached

    def test_a_long_plan_has_every_operation_and_fault(self):
        ops = workload.plan(1, 300)
        timed = faults.plan(1, ops, 300)
        kinds = {o["kind"] for o in ops}
        for k in ("append", "append_batch", "import", "drainer", "follower", "rebuild", "reset", "retry", "recreate"):
            self.assertIn(k, kinds)
        self.assertTrue(any(o["kind"] == "rebuild" and not o.get("queue") for o in ops))
        got = {o["fault"]["kind"] for o in ops if "fault" in o} | {f["kind"] for f in timed}
        self.assertEqual(got, {"kill", "int", "stop", "fsize", "lock", "probe", "restart"})
        self.assertTrue(any(o.get("race_with") for o in ops))
        for o in ops:  # a raced pair is planned together, each naming the other
            if o.get("race_with"):
                other = next(x for x in ops if x["id"] == o["race_with"])
                self.assertEqual((other["t"], other["race_with"]), (o["t"], o["id"]))
                self.assertEqual({o["race"], other["race"]}, {"first", "second"})
                self.assertNotIn("fault", o)  # the runner's pauses only

    def test_server_restarts_come_from_a_sequence_of_their_own(self):
        ops = workload.plan(4, 8)
        timed = faults.plan(4, ops, 8)
        restarts = [f for f in timed if f["kind"] == "restart"]
        self.assertEqual(restarts, faults.restarts(4, 8))  # the rest of the plan draws the same with them or without
        self.assertTrue(1 <= len(restarts) <= 4 and restarts[0]["t"] >= 1.5)
        self.assertNotEqual(faults.restarts(4, 30), faults.restarts(5, 30))

    def test_the_schedule_ends_with_a_closing_pair_that_draws_nothing(self):
        ops = workload.plan(3, 10)
        first, second = ops[-2:]
        self.assertEqual((first["race"], second["race"], first["t"]), ("first", "second", second["t"]))
        self.assertTrue(all(o["t"] <= first["t"] for o in ops) and first["t"] >= 10)
        self.assertTrue(first["closing"] and second["closing"])
        rest = [o for o in ops if not o.get("closing")]
        self.assertEqual(faults.plan(3, ops, 10), faults.plan(3, rest, 10))  # same faults with it or without
        self.assertFalse(any("fault" in o for o in ops[-2:]))

    def test_history_keeps_what_was_written_and_skips_a_cut_line(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            h = history.History(os.path.join(d, "h.ndjson"))
            h.add("invoke", op="o1", kind="append", t=2.0)
            h.add("complete", op="o1", rc=0, t=1.0)
            h.close()
            with open(os.path.join(d, "h.ndjson"), "a") as f:
                f.write('{"k":"hstart","t":')  # a writer killed mid-line
            recs = history.load(os.path.join(d, "h.ndjson"), os.path.join(d, "missing"))
            self.assertEqual([r["k"] for r in recs], ["complete", "invoke"])
            self.assertEqual(len(history.around(recs, 1.5, seconds=0.6)), 2)


if __name__ == "__main__":
    unittest.main()
