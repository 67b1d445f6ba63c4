"""The tools of docs/integrations.md, as it tells to use them: the sqlite3
shell (-cmd and ~/.sqliterc), litecli and sqlite-utils (Debian packages),
and read-only connections as a read-only server opens them."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from integlib import DBPOOLCTL, EXT, IntegTestCase, need  # noqa: E402

CURRENT = "SELECT joined FROM pool_connections WHERE current"
# How many connections the process asking holds.
MINE = ("SELECT count(*) FROM pool_connections WHERE pid = "
        "(SELECT pid FROM pool_connections WHERE current)")


class ToolsTest(IntegTestCase):
    def run_cmd(self, args, env=None, status=0):
        r = subprocess.run(args, cwd=self.dir, env=env or self.env, capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, status, r.stderr)
        return r

    def test_sqlite3_cmd_load_and_sqliterc(self):
        r = self.run_cmd(["sqlite3", "-cmd", ".load " + EXT, self.db, CURRENT])
        self.assertEqual((r.stdout, r.stderr), ("load\n", ""))
        # An init file (~/.sqliterc is one: the shell finds it through the
        # password database, so a test cannot point HOME at its own).
        init = os.path.join(self.dir, "sqliterc")
        with open(init, "w") as f:
            f.write(".load %s\n" % EXT)
        r = self.run_cmd(["sqlite3", "-init", init, self.db, CURRENT])
        self.assertEqual(r.stdout, "load\n")

    def test_sqlite3_at_a_full_pool(self):
        self.fill_pool(timeout_ms=100)
        r = self.run_cmd([DBPOOLCTL, "run", "--", "sqlite3", self.db, "SELECT 1"], status=1)
        self.assertTrue(r.stderr.startswith(
            'Error: unable to open database "%s": automatic extension loading failed: '
            "dbpool: pool full: all 4 connections to " % self.db), r.stderr)

    def test_litecli_under_dbpoolctl_run_holds_one_connection(self):
        need("litecli", "litecli")
        rc = os.path.join(self.dir, "liteclirc")
        r = self.run_cmd([DBPOOLCTL, "run", "--", "litecli", "--liteclirc", rc, "--csv",
                          "-e", "%s; %s" % (CURRENT, MINE), self.db],
                         env=dict(self.env, HOME=self.dir))
        self.assertEqual(r.stdout.split(), ['"joined"', '"preload"', '"count(*)"', '"1"'])

    def test_sqlite_utils_load_extension_run_and_a_full_pool(self):
        need("sqlite-utils", "sqlite-utils")
        r = self.run_cmd(["sqlite-utils", "query", self.db, CURRENT,
                          "--load-extension=" + EXT + ".so"])
        self.assertEqual(r.stdout.strip(), '[{"joined": "load"}]')
        r = self.run_cmd([DBPOOLCTL, "run", "--", "sqlite-utils", "query", self.db, CURRENT])
        self.assertEqual(r.stdout.strip(), '[{"joined": "preload"}]')
        self.fill_pool(timeout_ms=100)
        r = self.run_cmd([DBPOOLCTL, "run", "--", "sqlite-utils", "query", self.db,
                          "SELECT 1"], status=1)
        last = r.stderr.strip().splitlines()[-1]
        self.assertTrue(last.startswith(
            "sqlite3.OperationalError: automatic extension loading failed: dbpool: "
            "pool full: all 4 connections to %s" % self.db), last)
        r = self.run_cmd(["sqlite-utils", "query", self.db, "SELECT 1",
                          "--load-extension=" + EXT + ".so"], status=1)
        self.assertIn("dbpool: pool full: all 4 connections", r.stderr.strip().splitlines()[-1])

    def test_read_only_and_immutable_connections_are_counted(self):
        code = ("import sqlite3, sys\n"
                "for q in ('mode=ro', 'immutable=1'):\n"
                "    c = sqlite3.connect('file:%%s?%%s' %% (sys.argv[1], q), uri=True)\n"
                "    print(q, c.execute(%r).fetchone()[0])\n" % CURRENT)
        r = self.run_cmd([DBPOOLCTL, "run", "--", "/usr/bin/python3", "-c", code, self.db])
        self.assertEqual(r.stdout, "mode=ro preload\nimmutable=1 preload\n")


if __name__ == "__main__":
    unittest.main()
