"""A full pool is an error applications can tell apart from a locked
database: both are SQLITE_BUSY, only a full pool's message contains
"dbpool: pool full: " (docs/sql.md, docs/integrations.md). Checked with
Debian's Python (exception class, sqlite_errorcode, sqlite_errorname,
message) and the sqlite3 shell (what it prints, its exit status)."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import EXT, PoolTestCase, wait_until  # noqa: E402

PREFIX = "dbpool: pool full: "

# Prints one line per failure: class|code|name|message.
REPORT = (
    "def report(e):\n"
    "    print('%s|%s|%s|%s' % (type(e).__name__, e.sqlite_errorcode,\n"
    "                           e.sqlite_errorname, e))\n")


class PoolFullTest(PoolTestCase):
    def run_python(self, code):
        p = self.python(REPORT + code)
        out, err = p.communicate(timeout=60)
        self.assertEqual(err, "")
        return out.strip().split("|", 3)

    def test_python_sees_busy_with_the_prefix(self):
        for _ in range(3):
            self.shell()
        cls, code, name, msg = self.run_python(
            "try:\n"
            "    sqlite3.connect('file:' + DB + '?dbpool_timeout=100', uri=True)\n"
            "except sqlite3.OperationalError as e:\n"
            "    report(e)\n")
        self.assertEqual((cls, int(code), name), ("OperationalError", 5, "SQLITE_BUSY"))
        self.assertEqual(
            msg, "automatic extension loading failed: " + PREFIX + "all 3 connections to "
            "%s are in use (waited %s" % (self.db, msg.split("(waited ")[1]))

    def test_a_locked_database_is_busy_without_the_prefix(self):
        locker = self.shell()
        locker.stdin.write("BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);\n")
        locker.stdin.flush()
        # The shell's write lock is taken once its INSERT ran; retry until then.
        def locked():
            cls, code, name, msg = self.run_python(
                "c = sqlite3.connect(DB, timeout=0)\n"
                "try:\n"
                "    c.execute('INSERT INTO t VALUES (2)')\n"
                "    c.rollback()\n"
                "    print('x|0|x|not locked yet')\n"
                "except sqlite3.OperationalError as e:\n"
                "    report(e)\n")
            return None if msg == "not locked yet" else (cls, code, name, msg)
        cls, code, name, msg = wait_until(locked, what="the shell's lock")
        self.assertEqual((cls, int(code), name), ("OperationalError", 5, "SQLITE_BUSY"))
        self.assertEqual(msg, "database is locked")
        self.assertNotIn(PREFIX, msg)

    def test_the_shell_prints_the_prefix_and_fails(self):
        for _ in range(3):
            self.shell()
        self.assertEqual(self.ctl("set", self.db, "acquire_timeout_ms=100").returncode, 0)
        env = self.env
        # .load on the full pool's database: the load fails.
        s = subprocess.run(["sqlite3", "-bail", self.db, ".load " + EXT, "SELECT 1"],
                           capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(s.returncode, 1)
        self.assertTrue(s.stderr.startswith(
            "Error: error during initialization: " + PREFIX + "all 3 connections to %s "
            "are in use (waited " % self.db), s.stderr)
        # Loaded first (on an in-memory database), then .open: the open fails,
        # and the 3.40 shell goes on with an in-memory database (exit status 0).
        s = subprocess.run(["sqlite3", "-bail", ":memory:", ".load " + EXT,
                            ".open 'file:%s?dbpool_timeout=100'" % self.db,
                            "SELECT 'main=' || file FROM pragma_database_list"],
                           capture_output=True, text=True, env=env, timeout=60)
        self.assertTrue(s.stderr.startswith(
            'Error: unable to open database "file:%s?dbpool_timeout=100": '
            "automatic extension loading failed: %sall 3 connections to %s "
            "are in use (waited " % (self.db, PREFIX, self.db)), s.stderr)
        self.assertEqual(s.stdout, "main=\n")


if __name__ == "__main__":
    unittest.main()
