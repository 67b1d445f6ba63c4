"""The SQLite extension across real processes: sqlite3 shells and Python
processes holding connections against one host-wide cap.

Run by tests/suites/python.sh with Debian's /usr/bin/python3 (its sqlite3
module can load extensions). Each test gets its own database file and pool
namespace, and removes its pool segments.
"""
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import EXT, PoolTestCase, wait_until  # noqa: E402


class ExtensionTest(PoolTestCase):
    # -- tests ---------------------------------------------------------------

    def test_fourth_open_fails_after_its_timeout_with_the_message(self):
        for _ in range(3):
            self.shell()
        self.assertEqual(self.stats()[0], 3)
        p = self.python(
            "t0 = time.monotonic()\n"
            "try:\n"
            "    sqlite3.connect('file:' + DB + '?dbpool_timeout=300', uri=True)\n"
            "    print('connected')\n"
            "except sqlite3.OperationalError as e:\n"
            "    print('%.0f|%s' % ((time.monotonic() - t0) * 1000, e))\n")
        out, err = p.communicate(timeout=30)
        self.assertEqual(err, "")
        elapsed, message = out.strip().split("|", 1)
        self.assertGreaterEqual(float(elapsed), 300)
        m = re.fullmatch(r"automatic extension loading failed: dbpool: pool full: all 3 "
                         r"connections to (.*) are in use \(waited (\d+) ms\)", message)
        self.assertIsNotNone(m, message)
        self.assertEqual(m.group(1), self.db)
        self.assertGreaterEqual(int(m.group(2)), 300)
        self.assertEqual(self.stats()[0], 3)
        self.assertGreaterEqual(self.stats()[5], 1)
        # The failed attempt is in the wait figures, with the time it waited.
        max_wait, timeouts = self.view.execute(
            "SELECT max_wait_ms, total_timeouts FROM pool_stats WHERE database = ?",
            (self.db,)).fetchone()
        self.assertEqual(timeouts, 1)
        self.assertGreaterEqual(max_wait, 299)

    def test_load_in_a_full_pool_fails_with_the_message(self):
        shells = [self.shell() for _ in range(3)]
        shells[0].stdin.write(
            "UPDATE pool_settings SET value = 200 WHERE name = 'acquire_timeout_ms';\n")
        shells[0].stdin.flush()
        wait_until(lambda: self.view.execute(
            "SELECT acquire_timeout_ms FROM pool_stats WHERE database = ?",
            (self.db,)).fetchone()[0] == 200, what="timeout 200")
        s = subprocess.run(["sqlite3", self.db], input=".load %s\n" % EXT,
                           capture_output=True, text=True, env=self.env, timeout=30)
        self.assertIn("Error: error during initialization: dbpool: pool full: all 3 "
                      "connections to %s are in use (waited" % self.db, s.stderr)
        self.assertEqual(self.stats()[0], 3)

    def test_a_second_copy_of_the_extension_counts_nothing_twice(self):
        """Loading dbpool from another file too (a copy elsewhere, as with
        dbpoolctl run and an application that loads its own) must not
        install a second counter: it would take a second slot for each
        connection, for a moment, so at the cap the open would fail."""
        for _ in range(2):
            self.shell()  # one slot of 3 left
        copy = os.path.join(self.dir, "copy")
        os.mkdir(copy)
        shutil.copy(EXT + ".so", copy)
        p = self.python(
            "import os\n"
            "other = sqlite3.connect(':memory:')\n"
            "other.enable_load_extension(True)\n"
            "other.load_extension(sys.argv[1])\n"
            "c = sqlite3.connect('file:' + DB + '?dbpool_timeout=200', uri=True)\n"
            "print(c.execute('SELECT count(*) FROM pool_connections WHERE pid = ?',"
            " (os.getpid(),)).fetchone()[0])\n", os.path.join(copy, "dbpool"))
        out, err = p.communicate(timeout=30)
        self.assertEqual((out, err), ("1\n", ""))

    def test_a_waiter_gets_in_when_a_holder_closes(self):
        shells = [self.shell() for _ in range(3)]
        p = self.python(
            "c = sqlite3.connect('file:' + DB + '?dbpool_timeout=20000', uri=True)\n"
            "print(c.execute('SELECT count(*) FROM t').fetchone()[0])\n")
        wait_until(lambda: self.stats()[1] == 1, what="a waiter")
        self.assertEqual([h[2] for h in self.holders()].count("waiting"), 1)
        self.close_shell(shells[0])
        out, err = p.communicate(timeout=30)
        self.assertEqual((out.strip(), err), ("0", ""))
        self.assertEqual(self.stats()[:2], (2, 0))

    def test_a_sigkilled_shell_gives_its_slot_back(self):
        shells = [self.shell() for _ in range(3)]
        p = self.python(
            "c = sqlite3.connect('file:' + DB + '?dbpool_timeout=20000', uri=True)\n"
            "print('in')\n")
        wait_until(lambda: self.stats()[1] == 1, what="a waiter")
        shells[1].send_signal(signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        self.assertEqual((out.strip(), err), ("in", ""))
        st = self.stats()
        self.assertEqual(st[0], 2)  # two shells left; the Python process exited
        self.assertGreaterEqual(st[3], 1)  # total_reclaimed

    def test_pool_connections_lists_other_processes(self):
        shells = [self.shell() for _ in range(2)]
        p = self.python(
            "c = sqlite3.connect(DB)\n"
            "for row in c.execute('SELECT pid, process, state, current FROM pool_connections"
            " WHERE database = ? ORDER BY pid', (DB,)):\n"
            "    print('%d|%s|%s|%d' % row)\n")
        out, err = p.communicate(timeout=30)
        self.assertEqual(err, "")
        rows = [line.split("|") for line in out.split()]
        pids = {int(r[0]) for r in rows}
        self.assertTrue({s.pid for s in shells} <= pids, (rows, [s.pid for s in shells]))
        self.assertIn(p.pid, pids)
        for pid, process, state, current in rows:
            self.assertEqual(state, "active")
            self.assertEqual(current, "1" if int(pid) == p.pid else "0")
            if int(pid) != p.pid:
                self.assertEqual(process, "sqlite3")
        self.assertEqual(self.stats()[4], 2)  # processes: the shells

    def test_a_setting_changed_in_one_process_shows_in_another(self):
        s = self.shell()
        s.stdin.write("UPDATE pool_settings SET value = 7 WHERE name = 'max_connections';\n")
        s.stdin.flush()
        wait_until(lambda: self.stats()[2] == 7, what="max_connections = 7")
        p = self.python(
            "c = sqlite3.connect(DB)\n"
            "print(c.execute('PRAGMA dbpool_max_connections').fetchone()[0])\n"
            "c.execute('PRAGMA dbpool_max_connections = 5')\n")
        out, err = p.communicate(timeout=30)
        self.assertEqual((out.strip(), err), ("7", ""))
        self.assertEqual(self.stats()[2], 5)

    def test_python_threads_share_the_cap(self):
        limit, threads = 3, 8
        lock = threading.Lock()
        state = {"open": 0, "max": 0, "ok": 0, "errors": []}

        def worker():
            try:
                c = sqlite3.connect("file:%s?dbpool_timeout=20000" % self.db, uri=True,
                                    check_same_thread=False)
                with lock:
                    state["open"] += 1
                    state["max"] = max(state["max"], state["open"])
                c.execute("SELECT count(*) FROM t").fetchone()
                time.sleep(0.05)
                with lock:
                    state["open"] -= 1
                c.close()
                with lock:
                    state["ok"] += 1
            except Exception as e:  # reported below
                state["errors"].append(repr(e))

        # The extension is loaded in this process: its file connections count.
        ts = [threading.Thread(target=worker) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(state["errors"], [])
        self.assertEqual(state["ok"], threads)
        self.assertLessEqual(state["max"], limit)
        st = self.stats()
        self.assertEqual(st[0], 0)
        total = self.view.execute("SELECT total_acquired FROM pool_stats WHERE database = ?",
                                  (self.db,)).fetchone()[0]
        self.assertEqual(total, threads)

    def test_memory_databases_are_not_counted(self):
        s = self.shell()
        m = sqlite3.connect(":memory:")
        self.assertEqual(m.execute("SELECT count(*) FROM pool_settings").fetchone()[0], 0)
        m.close()
        self.assertEqual(self.stats()[0], 1)
        self.close_shell(s)
        self.assertEqual(self.stats()[0], 0)

    def test_invalid_dbpool_timeout_is_rejected(self):
        with self.assertRaises(sqlite3.OperationalError) as cm:
            sqlite3.connect("file:%s?dbpool_timeout=soon" % self.db, uri=True)
        self.assertEqual(str(cm.exception),
                         "automatic extension loading failed: dbpool: invalid "
                         "dbpool_timeout 'soon' for %s: expected milliseconds "
                         "from 0 to 86400000" % self.db)
        self.assertIsNone(self.stats())  # nothing happened: not even a pool


if __name__ == "__main__":
    unittest.main(verbosity=2)
