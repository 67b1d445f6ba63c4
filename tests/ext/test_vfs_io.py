"""The VFS shim's I/O path: every connection a process opens after loading
goes through the "dbpool" VFS (ext/vfs_shim.c), which passes its reads,
writes, locks, journals, WAL index and memory maps to the default VFS.
These tests write through it in real processes -- rollback journals of
every kind, a hot journal left by a process killed mid-transaction, WAL
from two processes, checkpoints, memory-mapped I/O -- and check the
result with a sqlite3 shell that never loaded dbpool: the same rows, an
intact database, and no slot held once the writers are gone.

Run by tests/suites/python.sh with Debian's /usr/bin/python3.
"""
import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import PoolTestCase, wait_until  # noqa: E402

# Opened after loading: through the shim. PRAGMA dbpool_max_connections is
# answered only by the shim, so it proves the connection went through it.
OPEN = ("import os\n"
        "db = sqlite3.connect(DB, isolation_level=None)\n"
        "assert int(db.execute('PRAGMA dbpool_max_connections').fetchone()[0]) == 3\n")


class VfsIoTest(PoolTestCase):
    def run_python(self, code, *args):
        """Run code in a new process (loaded, then OPEN); returns its stdout."""
        p = self.python(OPEN + code, *args)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(err, "")
        return out.strip()

    def plain(self, sql):
        """What a sqlite3 shell without dbpool reads."""
        r = subprocess.run(["sqlite3", self.db, sql], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.stderr, "")
        return r.stdout.strip()

    def assert_no_slot_held(self):
        wait_until(lambda: self.stats()[0] == 0, what="every slot to be free")

    # -- tests ---------------------------------------------------------------

    def test_rollback_journal_modes_commit_and_roll_back_through_the_shim(self):
        for mode in ("delete", "truncate", "persist"):
            out = self.run_python(
                "mode = sys.argv[1]\n"
                "print(db.execute('PRAGMA journal_mode = ' + mode).fetchone()[0])\n"
                "db.execute('BEGIN')\n"
                "db.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(200)])\n"
                "db.execute('COMMIT')\n"
                "db.execute('BEGIN')\n"
                "db.executemany('INSERT INTO t VALUES (?)', [(-1,)] * 50)\n"
                "db.execute('ROLLBACK')\n"
                "print(db.execute('SELECT count(*) FROM t').fetchone()[0])\n", mode)
            self.assertEqual(out.split(), [mode, str(200 * ("delete", "truncate",
                                                            "persist").index(mode) + 200)])
        self.assertEqual(self.plain("SELECT count(*), sum(x = -1) FROM t"), "600|0")
        self.assertEqual(self.plain("PRAGMA integrity_check"), "ok")
        self.assert_no_slot_held()

    def test_hot_journal_of_a_killed_writer_is_rolled_back_through_the_shim(self):
        self.run_python("db.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(10)])\n")
        # A writer whose cache spills to the database file mid-transaction,
        # killed there: the database holds uncommitted pages, the journal
        # the originals (a hot journal).
        p = self.python(
            OPEN + "db.execute('PRAGMA cache_size = 2')\n"
            "db.execute('BEGIN')\n"
            "db.executemany('INSERT INTO t VALUES (?)', [('y' * 3000,)] * 300)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
        self.assertEqual(p.stdout.readline().strip(), "ready")
        self.assertTrue(os.path.getsize(self.db + "-journal") > 0)
        p.send_signal(signal.SIGKILL)
        p.wait()
        # The next connection (through the shim) rolls it back.
        out = self.run_python("print(db.execute('SELECT count(*) FROM t').fetchone()[0])\n"
                              "print(db.execute('PRAGMA integrity_check').fetchone()[0])\n")
        self.assertEqual(out.split(), ["10", "ok"])
        self.assertFalse(os.path.exists(self.db + "-journal"))
        self.assertEqual(self.plain("SELECT count(*) FROM t"), "10")
        self.assert_no_slot_held()
        self.assertEqual(self.stats()[3], 1)  # the killed writer's slot, reclaimed

    def test_wal_from_two_processes_then_a_truncating_checkpoint(self):
        self.assertEqual(self.run_python("print(db.execute('PRAGMA journal_mode = wal')"
                                         ".fetchone()[0])\n"), "wal")
        writer = ("db.execute('PRAGMA wal_autocheckpoint = 0')\n"
                  "for i in range(100):\n"
                  "    db.execute('INSERT INTO t VALUES (?)', (int(sys.argv[1]) + i,))\n")
        # A connection that stays open meanwhile: the last one to close
        # would checkpoint and delete the WAL.
        keeper = self.python(OPEN + "db.execute('SELECT count(*) FROM t').fetchone()\n"
                             "try:\n    print('open', flush=True)\n"
                             "    time.sleep(60)\nexcept KeyboardInterrupt:\n"
                             "    db.close()\n")
        self.assertEqual(keeper.stdout.readline().strip(), "open")
        a = self.python(OPEN + writer, "0")
        b = self.python(OPEN + writer, "1000")
        for p in (a, b):
            _, err = p.communicate(timeout=60)
            self.assertEqual((p.returncode, err), (0, ""))
        self.assertGreater(os.path.getsize(self.db + "-wal"), 0)
        out = self.run_python("print(*db.execute('PRAGMA wal_checkpoint(TRUNCATE)')"
                              ".fetchone())\n"
                              "print(db.execute('SELECT count(*), sum(x) FROM t')"
                              ".fetchone())\n")
        busy, log, done = out.splitlines()[0].split()
        self.assertEqual(busy, "0")
        self.assertEqual(log, done)
        self.assertEqual(os.path.getsize(self.db + "-wal"), 0)
        self.assertEqual(out.splitlines()[1], "(200, %d)" % (sum(range(100)) * 2 + 100000))
        keeper.send_signal(signal.SIGINT)  # closes its connection, exits
        self.assertEqual(keeper.wait(timeout=30), 0)
        self.assertEqual(self.plain("SELECT count(*) FROM t"), "200")
        self.assertEqual(self.plain("PRAGMA integrity_check"), "ok")
        self.assert_no_slot_held()

    def test_memory_mapped_io_goes_through_the_shim_to_the_file(self):
        for mode in ("delete", "wal"):
            out = self.run_python(
                "db.execute('PRAGMA journal_mode = ' + sys.argv[1])\n"
                "print(db.execute('PRAGMA mmap_size = 67108864').fetchone()[0])\n"
                "db.execute('BEGIN')\n"
                "db.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(5000)])\n"
                "db.execute('COMMIT')\n"
                "print(db.execute('SELECT count(*), sum(x) FROM t').fetchone())\n"
                "maps = open('/proc/self/maps').read()\n"
                "print(any(l.endswith(DB) for l in maps.splitlines()))\n", mode)
            # The database file itself is mapped: SQLite's xFetch reached
            # the real file through the shim.
            self.assertEqual(out.splitlines()[0], "67108864")
            self.assertEqual(out.splitlines()[2], "True")
        self.assertEqual(self.plain("SELECT count(*), sum(x) FROM t"),
                         "10000|%d" % (sum(range(5000)) * 2))
        self.assertEqual(self.plain("PRAGMA integrity_check"), "ok")
        self.assert_no_slot_held()

    def test_automatic_checkpoints_keep_the_wal_bounded(self):
        out = self.run_python(
            "db.execute('PRAGMA journal_mode = wal')\n"
            "db.execute('PRAGMA wal_autocheckpoint = 8')\n"
            "for i in range(400):\n"
            "    db.execute('INSERT INTO t VALUES (?)', ('z' * 2000,))\n"
            "print(db.execute('SELECT count(*) FROM t').fetchone()[0])\n"
            "print(os.path.getsize(DB + '-wal'))\n")
        count, wal_size = out.split()
        self.assertEqual(count, "400")
        # 400 transactions of a 2 kB row: about 400 pages written to the
        # WAL; checkpoints reset it, so it never holds more than a few
        # times the threshold (it is reused, not truncated, after one).
        self.assertLess(int(wal_size), 64 * 4096)
        self.assertEqual(self.plain("PRAGMA integrity_check"), "ok")
        self.assert_no_slot_held()


if __name__ == "__main__":
    unittest.main()
