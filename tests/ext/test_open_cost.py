"""What an open costs with the extension, and that the shortcuts behind it
change nothing a user can see.

An open through the extension's VFS shim registers the eponymous tables
only when the connection first reads, locks or asks about its file, takes
the file's identity from SQLite's own fstat of the descriptor it opened,
and learns at close whether the file still has a name from SQLite's own
fstat there (vfs_shim.c). These tests hold real processes to that: the
tables and functions answer whatever a connection's first statement is,
a deleted database's pool still goes when its last connection closes, and
an open + close makes no system call that it would not make without the
extension (counted with strace, exact where timings are not).
"""
import glob
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import EXT, PoolTestCase, wait_until  # noqa: E402

FIRST_STATEMENTS = [
    ("SELECT count(*) > 0 FROM pool_stats WHERE database = ?", True, [(1,)]),
    ("SELECT name FROM pragma_module_list WHERE name LIKE 'pool_%' ORDER BY name", False,
     [("pool_connections",), ("pool_settings",), ("pool_stats",)]),
    ("SELECT state FROM pool_connections WHERE current", False, [("active",)]),
    ("SELECT name FROM pool_settings WHERE name = 'paused'", False, [("paused",)]),
    ("SELECT dbpool_version() GLOB '[0-9]*.[0-9]*.[0-9]*'", False, [(1,)]),
]


class OpenCostTest(PoolTestCase):
    def run_python(self, code, *args):
        p = self.python(code, *args)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err)
        return out

    def test_tables_and_functions_answer_as_a_first_statement(self):
        for sql, takes_db, expected in FIRST_STATEMENTS:
            for uri in ("", "?nolock=1", "?immutable=1"):
                with self.subTest(sql=sql, uri=uri):
                    out = self.run_python(
                        "c = sqlite3.connect('file:' + DB + sys.argv[2], uri=True)\n"
                        "params = (DB,) if sys.argv[3] == '1' else ()\n"
                        "print(repr(c.execute(sys.argv[1], params).fetchall()))\n",
                        sql, uri, "1" if takes_db else "0")
                    self.assertEqual(out.strip(), repr(expected))

    def test_pragma_module_list_first_lists_the_tables(self):
        out = self.run_python(
            "c = sqlite3.connect(DB)\n"
            "print(sorted(r[0] for r in c.execute('PRAGMA module_list')"
            " if r[0].startswith('pool_')))\n")
        self.assertEqual(out.strip(), "['pool_connections', 'pool_settings', 'pool_stats']")

    def test_tables_answer_after_a_transaction_in_exclusive_mode(self):
        # The lock taken by the first transaction stays: later statements
        # never touch the file again. The tables came with that first lock.
        out = self.run_python(
            "c = sqlite3.connect(DB, isolation_level=None)\n"
            "c.execute('PRAGMA locking_mode=EXCLUSIVE')\n"
            "c.execute('BEGIN IMMEDIATE'); c.execute('INSERT INTO t VALUES (1)')\n"
            "c.execute('COMMIT')\n"
            "print(c.execute('SELECT active FROM pool_stats WHERE database = ?',"
            " (DB,)).fetchall())\n")
        self.assertEqual(out.strip(), "[(1,)]")

    def test_a_deleted_database_loses_its_pool_when_its_last_connection_closes(self):
        prelude = ("import sqlite3, sys\nboot = sqlite3.connect(':memory:')\n"
                   "boot.enable_load_extension(True)\nboot.load_extension(%r)\n" % EXT)
        child = subprocess.Popen(
            ["/usr/bin/python3", "-c", prelude +
             "c = sqlite3.connect(%r)\n"
             "c.execute('SELECT count(*) FROM t').fetchall()\n"
             "print('open', flush=True)\n"
             "sys.stdin.readline()\n"
             "c.close()\n"
             "print('closed', flush=True)\n"
             "sys.stdin.readline()\n" % self.db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=self.env, text=True)
        self.procs.append(child)
        self.assertEqual(child.stdout.readline().strip(), "open")
        self.assertEqual(len(glob.glob("/dev/shm/dbpool.%s.*" % self.ns)), 1)
        os.unlink(self.db)
        child.stdin.write("\n")
        child.stdin.flush()
        self.assertEqual(child.stdout.readline().strip(), "closed")
        # Still running (its mapping cached): the pool went at the close.
        wait_until(lambda: not glob.glob("/dev/shm/dbpool.%s.*" % self.ns),
                   what="the deleted database's pool to be removed")
        child.stdin.write("\n")
        child.stdin.flush()
        child.wait(timeout=30)

    @unittest.skipUnless(shutil.which("strace"), "needs strace (scripts/deps.sh)")
    def test_an_open_and_close_makes_no_system_call_of_its_own(self):
        def calls_per_open(load):
            counts = []
            for n in (100, 300):
                out = os.path.join(self.dir, "strace-%d-%d" % (load, n))
                code = ("import sqlite3, sys\n"
                        "if sys.argv[3] == '1':\n"
                        "    boot = sqlite3.connect(':memory:')\n"
                        "    boot.enable_load_extension(True)\n"
                        "    boot.load_extension(sys.argv[2])\n"
                        "for _ in range(5): sqlite3.connect(sys.argv[1]).close()\n"
                        "for _ in range(int(sys.argv[4])): sqlite3.connect(sys.argv[1]).close()\n")
                subprocess.run(["strace", "-f", "-c", "-o", out, "/usr/bin/python3", "-c", code,
                                self.db, EXT, str(load), str(n)],
                               check=True, env=self.env, timeout=120, capture_output=True)
                with open(out) as f:
                    total = [line for line in f if line.rstrip().endswith("total")]
                counts.append(int(total[0].split()[3]))  # % seconds usecs/call calls
            return (counts[1] - counts[0]) / 200.0
        plain, pooled = calls_per_open(0), calls_per_open(1)
        self.assertGreater(plain, 5)  # SQLite's own: opens, stats, reads, closes
        self.assertLessEqual(pooled - plain, 0.05, "plain %.2f, with dbpool %.2f" % (plain, pooled))


if __name__ == "__main__":
    unittest.main()
