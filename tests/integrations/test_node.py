"""The Node recipe of docs/integrations.md with better-sqlite3 (not a
Debian package: `make deps-integrations` installs it from npm into
tests/integrations/node): dbpool loaded once, connections counted, a full
pool told apart, the event loop blocked while an open waits, and
dbpoolctl run not reaching better-sqlite3's own SQLite."""
import os
import subprocess
import sys
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from integlib import DBPOOLCTL, IntegTestCase, need  # noqa: E402

MODULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node", "node_modules")


class NodeTest(IntegTestCase):
    def setUp(self):
        need("node", "nodejs (20 or later)")
        env = dict(os.environ, NODE_PATH=MODULES)
        r = subprocess.run(["node", "-e", "require('better-sqlite3')"], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("better-sqlite3 is not installed in %s (make deps-integrations "
                          "runs npm install there)" % MODULES)
        super().setUp()
        self.env["NODE_PATH"] = MODULES
        self.write("node_app.js", dest="db.js")

    def node(self, code, prefix=()):
        r = subprocess.run(list(prefix) + ["node", "-e", textwrap.dedent(code)],
                           cwd=self.dir, env=self.env, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, ""), r.stdout)
        return r.stdout.splitlines()

    def test_loaded_once_every_connection_counted(self):
        out = self.node("""\
            const { open } = require('./db.js');
            const a = open(process.env.APP_DB), b = open(process.env.APP_DB);
            console.log(a.prepare("SELECT joined FROM pool_connections WHERE current").pluck().get(),
                        a.prepare("SELECT count(*) FROM pool_connections WHERE pid = ?")
                         .pluck().get(process.pid));
            """)
        self.assertEqual(out, ["auto 2"])

    def test_a_full_pool_is_told_apart_and_blocks_the_event_loop(self):
        self.fill_pool(timeout_ms=300)
        out = self.node("""\
            const { open, isPoolFull } = require('./db.js');
            const t0 = Date.now();
            let returned = null;
            setTimeout(() => console.log('timer', returned !== null, Date.now() - t0 >= 250), 10);
            try {
              open(process.env.APP_DB);
            } catch (e) {
              returned = Date.now();
              console.log(e.code, isPoolFull(e), e.message);
            }
            """)
        self.assertEqual(len(out), 2, out)
        self.assertTrue(out[0].startswith(
            "SQLITE_BUSY true automatic extension loading failed: dbpool: pool full: "
            "all 4 connections to %s are in use (waited " % self.db), out[0])
        # The 10 ms timer ran only after the 300 ms wait ended.
        self.assertEqual(out[1], "timer true true")

    def test_dbpoolctl_run_does_not_reach_its_bundled_sqlite(self):
        code = ("const D = require('better-sqlite3'); const d = new D(process.env.APP_DB);"
                "d.prepare('SELECT 1').get(); console.log('open');"
                "process.stdin.on('data', () => {}); process.stdin.on('end', () => d.close());")
        p = self.spawn([DBPOOLCTL, "run", "--", "node", "-e", code], stdin=subprocess.PIPE)
        self.assertEqual(p.stdout.readline(), "open\n")
        self.assertEqual(self.stats()[0] if self.stats() else 0, 0)
        self.assertNotIn(p.pid, [h[0] for h in self.holders()])
        p.stdin.close()
        self.assertEqual(p.wait(timeout=60), 0)


if __name__ == "__main__":
    unittest.main()
