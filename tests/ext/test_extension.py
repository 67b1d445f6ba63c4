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
    def ctrl_c(self, proc, over):
        """Ctrl-C as a user gives it: SIGINT, and once more if over() is not
        true a second later (a signal that arrives just as a sleep ends by
        itself is missed: docs/sql.md). Returns the seconds from the first
        SIGINT until over()."""
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            wait_until(over, timeout=1.0, what="the first Ctrl-C to end the wait")
        except AssertionError:
            proc.send_signal(signal.SIGINT)
            wait_until(over, timeout=10.0, what="the second Ctrl-C to end the wait")
        return time.monotonic() - t0

    def hold_the_only_slot(self, *settings):
        """max_connections=1 (and settings), its slot held by a shell."""
        self.assertEqual(self.ctl("set", self.db, "max_connections=1", *settings).returncode, 0)
        return self.shell()

    # -- tests ---------------------------------------------------------------

    def test_fourth_open_fails_after_its_timeout_with_the_message(self):
        for _ in range(3):
            self.shell()
        self.assertEqual(self.stats()[0], 3)
        elapsed, message = self.try_connect("dbpool_timeout=300")
        self.assertGreaterEqual(elapsed, 300)
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

    def test_a_uri_cannot_take_a_connection_out_of_the_count(self):
        # 0.1.0 trusted dbpool_slot=N in a URI (its C pool's mark): with
        # max_connections=1, any number of connections got in.
        self.hold_the_only_slot()
        for slot in (0, 1, 2):
            _, message = self.try_connect("dbpool_slot=%d&dbpool_timeout=200" % slot)
            self.assertIn("dbpool: pool full: all 1 connections to %s are in use" % self.db, message)
        self.assertEqual(self.stats()[0], 1)

    def test_ctrl_c_interrupts_a_python_connect_waiting_on_a_full_pool(self):
        # 0.1.0: the KeyboardInterrupt came when the whole timeout had run.
        self.hold_the_only_slot()
        p = self.python(
            "t0 = time.monotonic()\n"
            "try:\n"
            "    try:\n"
            "        sqlite3.connect('file:' + DB + '?dbpool_timeout=10000', uri=True)\n"
            "        outcome = 'connected'\n"
            "    except sqlite3.OperationalError as e:\n"
            "        outcome = str(e)  # Python raises its KeyboardInterrupt here\n"
            "    time.sleep(20)\n"
            "    print('no KeyboardInterrupt|' + outcome)\n"
            "except KeyboardInterrupt as e:\n"
            "    print('KeyboardInterrupt|%s' % e.__context__)\n")
        wait_until(lambda: self.stats()[1] == 1, what="the connect to wait")
        took = self.ctrl_c(p, lambda: p.poll() is not None)
        out, err = p.communicate(timeout=30)
        self.assertEqual(err, "")
        self.assertLess(took, 3.0, out)
        self.assertEqual(out.strip(), "KeyboardInterrupt|automatic extension loading failed: "
                         "dbpool: interrupted while waiting for a slot of %s" % self.db)
        self.assertEqual(self.stats()[:2], (1, 0))  # it left the queue
        self.assertEqual(self.stats()[5], 0)  # an interrupt is not a timeout

    def test_signals_for_other_work_do_not_end_a_wait(self):
        # An interval timer (SIGALRM every 20 ms) runs through a 600 ms wait:
        # the wait times out as usual and the alarms were all served.
        self.hold_the_only_slot()
        p = self.python(
            "import signal\n"
            "alarms = []\n"
            "signal.signal(signal.SIGALRM, lambda *a: alarms.append(1))\n"
            "signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)\n"
            "t0 = time.monotonic()\n"
            "try:\n"
            "    sqlite3.connect('file:' + DB + '?dbpool_timeout=600', uri=True)\n"
            "except sqlite3.OperationalError as e:\n"
            "    took = time.monotonic() - t0\n"
            "    signal.setitimer(signal.ITIMER_REAL, 0)\n"
            "    print('%.3f|%d|%s' % (took, len(alarms), e))\n")
        out, err = p.communicate(timeout=30)
        self.assertEqual(err, "")
        took, alarms, message = out.strip().split("|", 2)
        self.assertGreaterEqual(float(took), 0.6)
        self.assertGreaterEqual(int(alarms), 1)
        self.assertIn("dbpool: pool full: all 1 connections to %s are in use (waited" % self.db, message)

    def test_ctrl_c_interrupts_open_in_the_sqlite3_shell(self):
        # The shell's SIGINT handler has SA_RESTART; a wait with a deadline
        # ends with EINTR anyway. Interactive, the shell then goes on with
        # an in-memory database; reading a script, it stops (its own rule).
        self.hold_the_only_slot()
        for interactive in (True, False):
            w = subprocess.Popen(["sqlite3"] + (["-interactive"] if interactive else [])
                                 + [":memory:"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=self.env, text=True)
            self.procs.append(w)
            w.stdin.write(".load %s\n.open file:%s?dbpool_timeout=10000\n" % (EXT, self.db))
            w.stdin.flush()
            wait_until(lambda: self.stats()[1] == 1, what="the .open to wait")
            self.assertLess(self.ctrl_c(w, lambda: self.stats()[1] == 0), 3.0)
            try:
                w.stdin.write("SELECT 'alive';\n.quit\n")
                w.stdin.close()
            except BrokenPipeError:  # the batch shell has gone
                pass
            w.stdin = None
            out, err = w.communicate(timeout=30)
            self.assertIn("dbpool: interrupted while waiting for a slot of %s" % self.db, err)
            self.assertEqual("alive" in out.split(), interactive, out)
        self.assertEqual(self.stats()[:2], (1, 0))

    def test_loading_again_is_a_no_op(self):
        # max_connections=1: a second slot for the same connection would
        # wait, and fail.
        self.ctl("set", self.db, "max_connections=1", "acquire_timeout_ms=300")
        s = subprocess.run(["sqlite3", self.db], input=(
            ".load {0}\n.load {0}\nSELECT 'loaded twice', active FROM pool_stats;\n"
            ".load {0}\nSELECT 'three times', count(*) FROM pool_connections;\n"
            .format(EXT)), capture_output=True, text=True, env=self.env, timeout=30)
        self.assertEqual((s.stdout, s.stderr), ("loaded twice|1\nthree times|1\n", ""))
        # Python, as Node's better-sqlite3 and Go's mattn do: load into every
        # connection, including those the automatic extension counted.
        p = self.python(
            "boot.load_extension(EXT)  # again, into the in-memory connection\n"
            "c = sqlite3.connect(DB)  # counted at open\n"
            "c.enable_load_extension(True)\n"
            "c.load_extension(EXT)\n"
            "c.load_extension(EXT)\n"
            "c.execute(\"SELECT dbpool_label('reloaded')\")\n"
            "print(boot.execute('SELECT active, label FROM pool_stats, pool_connections')"
            ".fetchall())\n"
            "c.close()\n"
            "print(boot.execute('SELECT active FROM pool_stats').fetchall())\n")
        out, err = p.communicate(timeout=30)
        self.assertEqual((out, err), ("[(1, 'reloaded')]\n[(0,)]\n", ""))
        self.assertEqual(self.stats()[5], 0)  # no load ever waited in vain

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

    def test_a_forced_removal_moves_open_connections_to_the_new_pool(self):
        # A connection open when its pool is removed by force is counted in
        # the new pool from its next transaction (above the limit, as after
        # lowering it), keeps its label, and its settings reach the new pool.
        p = subprocess.Popen(
            ["/usr/bin/python3", "-c",
             "import sqlite3, sys\n"
             "boot = sqlite3.connect(':memory:')\n"
             "boot.enable_load_extension(True)\nboot.load_extension(sys.argv[1])\n"
             "c = sqlite3.connect(sys.argv[2], isolation_level=None)\n"
             "c.execute(\"SELECT dbpool_label('old-connection')\")\n"
             "print('in', flush=True)\n"
             "for line in sys.stdin:\n"
             "    print(c.execute(line).fetchall(), flush=True)\n", EXT, self.db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=self.env, text=True)
        self.procs.append(p)
        self.assertEqual(p.stdout.readline().strip(), "in")
        self.assertEqual(self.ctl("rm", "--force", self.db).returncode, 0)
        self.assertEqual(self.ctl("set", self.db, "max_connections=1").returncode, 0)
        self.shell()  # takes the new pool's only slot
        self.assertEqual(self.stats()[0], 1)
        p.stdin.write("SELECT count(*) FROM t\n")
        p.stdin.flush()
        self.assertEqual(p.stdout.readline().strip(), "[(0,)]")
        self.assertEqual(self.stats()[0], 2)  # counted again, above the limit
        labels = [r[0] for r in self.view.execute(
            "SELECT label FROM pool_connections WHERE database = ?", (self.db,))]
        self.assertIn("old-connection", labels)
        p.stdin.write("PRAGMA dbpool_max_connections = 4\n")
        p.stdin.flush()
        self.assertEqual(p.stdout.readline().strip(), "[('4',)]")
        self.assertEqual(self.stats()[2], 4)  # the new pool's setting changed
        p.stdin.close()
        p.wait(timeout=10)
        wait_until(lambda: self.stats()[0] == 1, what="the moved slot to be released")

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

    def test_writers_take_turns_and_show_in_pool_connections(self):
        subprocess.run(["sqlite3", self.db, "PRAGMA journal_mode=WAL"], check=True,
                       capture_output=True)
        a = self.shell()
        a.stdin.write(".open %s\nPRAGMA busy_timeout=10000;\n"
                      "BEGIN IMMEDIATE; INSERT INTO t VALUES(1);\n" % self.db)
        a.stdin.flush()
        writer = lambda: dict(self.view.execute(
            "SELECT pid, writer FROM pool_connections WHERE database = ? AND writer "
            "IS NOT NULL", (self.db,)).fetchall())
        wait_until(lambda: writer().get(a.pid) == "writing", what="the shell writing")
        b = self.python(
            "c = sqlite3.connect(DB, timeout=10, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "c.execute('INSERT INTO t VALUES (2)')\n"
            "c.execute('COMMIT')\n"
            "print('committed')\n")
        wait_until(lambda: writer().get(b.pid) == "waiting", what="python waiting its turn")
        queue, waiting = self.view.execute(
            "SELECT writer_queue, writers_waiting FROM pool_stats WHERE database = ?",
            (self.db,)).fetchone()
        self.assertEqual((queue, waiting), ("on", 1))
        a.stdin.write("COMMIT;\n")
        a.stdin.flush()
        out, err = b.communicate(timeout=30)
        self.assertEqual((out, err), ("committed\n", ""))
        writes, waits, max_ms = self.view.execute(
            "SELECT total_writes, total_write_waits, write_wait_max_ms FROM pool_stats"
            " WHERE database = ?", (self.db,)).fetchone()
        self.assertEqual((writes, waits), (2, 1))
        self.assertGreater(max_ms, 0)

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

    def test_dbpool_timeout_follows_the_settings_rule(self):
        # The values a setting takes anywhere: whitespace around it, and an
        # integral REAL, are fine (a fraction is not: see below).
        for _ in range(3):
            self.shell()
        for value in ("%20200", "200%20", "200.0", "2e2"):
            elapsed, message = self.try_connect("dbpool_timeout=" + value)
            self.assertIn("are in use (waited", message, value)
            self.assertGreaterEqual(elapsed, 200, value)

    def test_databases_that_are_not_files_open_as_without_dbpool(self):
        # A full pool (1 of 1, short timeout): none of these waits, none is
        # counted, each behaves as without dbpool.
        self.hold_the_only_slot("acquire_timeout_ms=300")
        p = self.python(
            "import os\n"
            "os.chdir(os.path.dirname(DB))\n"
            "def show(name, c, sql):\n"
            "    print('%s|%s' % (name, c.execute(sql).fetchall()))\n"
            "m = sqlite3.connect('file:/mem1?vfs=memdb', uri=True)\n"
            "m.execute('CREATE TABLE m(x)')\n"
            "m.execute('INSERT INTO m VALUES (7)')\n"
            "m.commit()\n"
            "show('memdb', m, 'SELECT x FROM m')\n"
            "m2 = sqlite3.connect('file:/mem1?vfs=memdb', uri=True)\n"
            "show('memdb shared', m2, 'SELECT x FROM m')\n"
            "a = sqlite3.connect('file:app.db?vfs=memdb', uri=True)  # not the file\n"
            "show('memdb named like the file', a, 'SELECT name FROM sqlite_master')\n"
            "t = sqlite3.connect('')\n"
            "t.execute('CREATE TABLE tmp(x)')\n"
            "show('temporary', t, 'SELECT name FROM sqlite_master')\n"
            "show('memory uri', sqlite3.connect('file:x?mode=memory', uri=True),\n"
            "     'SELECT 1')\n"
            "n = sqlite3.connect('/dev/null')\n"
            "show('/dev/null', n, 'SELECT count(*) FROM sqlite_master')\n"
            "for c in (m, a, t, n):\n"
            "    show('pool', c, 'SELECT count(*) FROM pool_settings')\n"
            "print('label|' + str(n.execute(\"SELECT 1\").fetchone()[0]))\n"
            "try:\n"
            "    n.execute(\"SELECT dbpool_label('x')\")\n"
            "except sqlite3.OperationalError as e:\n"
            "    print('label|%s' % e)\n")
        out, err = p.communicate(timeout=30)
        self.assertEqual(err, "")
        self.assertEqual(out.splitlines(), [
            "memdb|[(7,)]", "memdb shared|[(7,)]", "memdb named like the file|[]",
            "temporary|[('tmp',)]", "memory uri|[(1,)]", "/dev/null|[(0,)]",
            "pool|[(0,)]", "pool|[(0,)]", "pool|[(0,)]", "pool|[(0,)]", "label|1",
            "label|dbpool_label: this connection holds no slot (in-memory, temporary "
            "or not a regular file)"])
        self.assertEqual(self.stats()[0], 1)  # only the shell
        self.assertEqual(self.stats()[5], 0)  # nobody timed out
        # The shell: .open of each, in a full pool, with dbpool loaded.
        s = subprocess.run(["sqlite3", ":memory:"], input=(
            ".load %s\n.open file:/mem2?vfs=memdb\nCREATE TABLE z(x);\n"
            "SELECT 'memdb', count(*) FROM z;\n"
            ".open /dev/null\nSELECT 'devnull', count(*) FROM sqlite_master;\n"
            ".open file:%s?vfs=memdb\nSELECT 'named', count(*) FROM sqlite_master;\n"
            % (EXT, self.db)), capture_output=True, text=True, env=self.env, timeout=30)
        self.assertEqual((s.stdout, s.stderr), ("memdb|0\ndevnull|0\nnamed|0\n", ""))
        self.assertEqual(self.stats()[0], 1)

    def test_invalid_dbpool_timeout_is_rejected(self):
        for value in ("soon", "200.5"):
            with self.assertRaises(sqlite3.OperationalError) as cm:
                sqlite3.connect("file:%s?dbpool_timeout=%s" % (self.db, value), uri=True)
            self.assertEqual(str(cm.exception),
                             "automatic extension loading failed: dbpool: invalid "
                             "dbpool_timeout '%s' for %s: expected milliseconds "
                             "from 0 to 86400000" % (value, self.db))
        self.assertIsNone(self.stats())  # nothing happened: not even a pool


if __name__ == "__main__":
    unittest.main(verbosity=2)
