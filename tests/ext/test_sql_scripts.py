"""The operator scripts of sql/, run as an operator runs them (sql/run.sh:
the real sqlite3 shell on :memory:, which holds no slot) against a live
pool held by other processes: sqlite3 shells and Python clients that loaded
the extension. Each script's output is checked, and the pool's state after
it. Every script in sql/ must be run here."""
import glob
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import EXT, ROOT, PoolTestCase, wait_until  # noqa: E402

RUN = os.path.join(ROOT, "sql", "run.sh")


def parse_columns(out):
    """The shell's -header -column output: one list of rows (dicts) per
    result set. A set is a header line, a line of dashes that gives each
    column's place, and its rows, up to the next set's header."""
    lines = out.splitlines()
    dashes = [i for i, line in enumerate(lines)
              if i > 0 and line.startswith("-") and set(line) <= set("- ")]
    sets = []
    for k, d in enumerate(dashes):
        spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[d])]
        spans[-1] = (spans[-1][0], None)  # the last column runs to the end
        cols = [lines[d - 1][a:b].strip() for a, b in spans]
        end = dashes[k + 1] - 1 if k + 1 < len(dashes) else len(lines)
        sets.append([{c: row[a:b].strip() for c, (a, b) in zip(cols, spans)}
                     for row in lines[d + 1:end]])
    return sets


class SqlScriptsTest(PoolTestCase):
    max_connections = "2"

    def run_script(self, name, timeout=60, **params):
        """sql/run.sh sql/NAME.sql k=v...: (exit status, result sets, stderr)."""
        env = dict(self.env, DBPOOL_EXT=EXT)
        args = [RUN, os.path.join(ROOT, "sql", name + ".sql")]
        args += ["%s=%s" % kv for kv in params.items()]
        r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
        return r.returncode, parse_columns(r.stdout), r.stderr

    def start_script(self, name, **params):
        env = dict(self.env, DBPOOL_EXT=EXT)
        args = [RUN, os.path.join(ROOT, "sql", name + ".sql")]
        args += ["%s=%s" % kv for kv in params.items()]
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env, text=True)
        self.procs.append(p)
        return p

    def waiter(self, label, timeout_ms=60000):
        """A Python client whose connection waits for a slot (URI timeout),
        then holds it until killed."""
        p = self.python(
            "c = sqlite3.connect('file:' + DB + '?dbpool_timeout=%d', uri=True)\n"
            "c.execute(\"SELECT dbpool_label('%s')\")\n"
            "print('in', flush=True)\n"
            "time.sleep(3600)\n" % (timeout_ms, label))
        return p

    def pool(self):
        return self.view.execute(
            "SELECT max_connections, active, waiting, paused FROM pool_stats "
            "WHERE database = ?", (self.db,)).fetchone()

    def test_report_shows_use_holders_waiters_and_writers(self):
        a = self.shell("alpha")
        b = self.shell("beta")
        w = self.waiter("gamma")
        wait_until(lambda: self.pool()[2] == 1, what="a waiter queued")
        rc, (pools, holders, waiters, writers), err = self.run_script("report", db=self.db)
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(len(pools), 1)
        self.assertEqual({k: pools[0][k] for k in ("database", "active", "idle", "waiting",
                                                   "processes", "used", "paused", "file")},
                         {"database": self.db, "active": "2/2", "idle": "0", "waiting": "1",
                          "processes": "3", "used": "100%", "paused": "no", "file": "ok"})
        self.assertEqual(sorted((h["pid"], h["process"], h["state"], h["label"]) for h in holders),
                         sorted([(str(a.pid), "sqlite3", "active", "alpha"),
                                 (str(b.pid), "sqlite3", "active", "beta")]))
        self.assertEqual([(x["pid"], x["process"]) for x in waiters], [(str(w.pid), "python3")])
        self.assertEqual((writers[0]["database"], writers[0]["writer_queue"],
                          writers[0]["writers_waiting"]), (self.db, "on", "0"))
        # Without db=: every pool of the namespace; top=1 holder.
        rc, (pools, holders, waiters, writers), err = self.run_script("report", top=1)
        self.assertEqual((rc, err), (0, ""))
        self.assertIn(self.db, [p["database"] for p in pools])
        self.assertEqual(len(holders), 1)

    def test_old_holders_lists_holders_past_n_seconds_with_labels(self):
        self.shell("nightly-report")
        self.python_holder("worker-7")
        rc, (rows,), err = self.run_script("old_holders", seconds=0, db=self.db)
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(sorted((r["process"], r["label"], r["state"]) for r in rows),
                         [("python3", "worker-7", "active"), ("sqlite3", "nightly-report", "active")])
        time.sleep(1.2)
        rc, (rows,), _ = self.run_script("old_holders", seconds=1, db=self.db)
        self.assertEqual(len(rows), 2)
        self.assertTrue(all(int(r["held_s"]) >= 1 for r in rows))
        rc, sets, _ = self.run_script("old_holders", seconds=3600, db=self.db)
        self.assertEqual((rc, sets), (0, []))  # no rows: the shell prints nothing

    def python_holder(self, label):
        p = self.python(
            "c = sqlite3.connect(DB)\n"
            "c.execute(\"SELECT dbpool_label('%s')\")\n"
            "print('in', flush=True)\n"
            "time.sleep(3600)\n" % label)
        self.assertEqual(p.stdout.readline().strip(), "in")
        return p

    def test_resize_lets_the_waiters_in(self):
        self.shell("a")
        self.shell("b")
        w = self.waiter("queued")
        wait_until(lambda: self.pool()[2] == 1, what="a waiter queued")
        rc, (before, new, drained, after), err = self.run_script("resize", db=self.db, max=3)
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual((before[0]["max_connections"], before[0]["active"], before[0]["waiting"]),
                         ("2", "2", "1"))
        self.assertEqual(new, [{"max_connections": "3"}])
        self.assertEqual(drained, [{"waiters_drained": "1"}])
        self.assertEqual((after[0]["max_connections"], after[0]["active"], after[0]["waiting"]),
                         ("3", "3", "0"))
        self.assertEqual(w.stdout.readline().strip(), "in")
        self.assertEqual(self.pool()[:3], (3, 3, 0))

    def test_resize_refuses_an_invalid_value_and_changes_nothing(self):
        self.shell("a")
        rc, sets, err = self.run_script("resize", db=self.db, max=0)
        self.assertEqual(rc, 1)
        self.assertIn("dbpool: max_connections=0 is out of range (1..4096)", err)
        self.assertEqual(sets[-1][0]["max_connections"], "2")
        self.assertEqual(self.pool()[0], 2)

    def test_drain_waits_for_zero_in_use_then_resume_lets_the_queue_in(self):
        holder = self.shell("busy")
        drain = self.start_script("drain", db=self.db, timeout_ms=60000)
        wait_until(lambda: self.pool()[3] == 1, what="the pool paused")
        late = self.waiter("late")  # paused: it queues although a slot is free
        wait_until(lambda: self.pool()[2] == 1, what="a client queued while paused")
        time.sleep(0.3)
        self.assertIsNone(drain.poll(), "drain must wait while a connection is in use")
        self.close_shell(holder)
        out, err = drain.communicate(timeout=60)
        self.assertEqual((drain.returncode, err), (0, ""), out)
        # Drained: the "resumed_after_timeout" query has no row (no set).
        paused, drained, state = parse_columns(out)
        self.assertEqual((paused, drained), ([{"paused": "1"}], [{"drained": "1"}]))
        self.assertEqual(state[0], {"database": self.db, "paused": "1", "active": "0",
                                    "idle": "0", "waiting": "1"})
        self.assertEqual(self.pool()[1:], (0, 1, 1))
        rc, (_, served, state), err = self.run_script("resume", db=self.db)
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(served, [{"waiters_served": "1"}])
        self.assertEqual(state[0], {"database": self.db, "paused": "0", "active": "1",
                                    "waiting": "0"})
        self.assertEqual(late.stdout.readline().strip(), "in")

    def test_a_drain_that_times_out_fails_and_resumes(self):
        self.shell("stays")
        t0 = time.monotonic()
        rc, sets, err = self.run_script("drain", db=self.db, timeout_ms=300)
        self.assertEqual(rc, 1)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertIn("dbpool_wait: still false after 300 ms", err)
        self.assertEqual(sets[1], [{"resumed_after_timeout": "0"}])
        self.assertEqual(sets[2][0], {"database": self.db, "paused": "0", "active": "1",
                                      "idle": "0", "waiting": "0"})
        self.assertEqual(self.pool()[3], 0)

    def test_every_script_is_tested(self):
        scripts = {os.path.basename(p)[:-4] for p in glob.glob(os.path.join(ROOT, "sql", "*.sql"))}
        with open(__file__) as f:
            names = {n for pair in re.findall(r'run_script\("(\w+)"|start_script\("(\w+)"',
                                              f.read()) for n in pair if n}
        self.assertEqual(scripts - names, set(), "scripts in sql/ that no test runs")


if __name__ == "__main__":
    unittest.main()
