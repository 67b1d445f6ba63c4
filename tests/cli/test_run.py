"""dbpoolctl run and libdbpool-preload.so: unmodified programs (a Python
script that never loads dbpool, the sqlite3 shell, php-cli) and their
children have every connection counted, shown as joined 'preload'; the cap
holds; misconfiguration fails loudly; run's own usage and exit statuses."""
import os
import shutil
import subprocess
import sys
import textwrap
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import BUILD, DBPOOLCTL, EXT, PoolTestCase  # noqa: E402
PRELOAD = os.path.join(BUILD, "libdbpool-preload.so")

# An application that knows nothing of dbpool: it opens two connections,
# says what it sees, and keeps them until its stdin closes.
APP = textwrap.dedent("""\
    import sqlite3, sys
    a = sqlite3.connect(sys.argv[1])
    b = sqlite3.connect(sys.argv[1])
    print(a.execute("SELECT joined FROM pool_connections WHERE current").fetchone()[0],
          a.execute("SELECT active FROM pool_stats WHERE database = ?",
                    (sys.argv[1],)).fetchone()[0], flush=True)
    sys.stdin.read()
    """)


class RunTest(PoolTestCase):
    max_connections = "4"

    def run_ctl(self, *args, env=None, **kw):
        return subprocess.run([DBPOOLCTL, "run"] + list(args), capture_output=True,
                              text=True, env=env or self.env, timeout=60, **kw)

    def pids_of(self, pid):
        return [h for h in self.view.execute(
            "SELECT pid, joined FROM pool_connections WHERE database = ?", (self.db,))
            if h[0] == pid]

    def test_an_unmodified_python_script_is_counted(self):
        app = os.path.join(self.dir, "app.py")
        with open(app, "w") as f:
            f.write(APP)
        p = subprocess.Popen([DBPOOLCTL, "run", "--", "/usr/bin/python3", app, self.db],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.env, text=True)
        self.procs.append(p)
        self.assertEqual(p.stdout.readline().split(), ["preload", "2"])
        # Seen from outside: the same pid (run execs), two holders.
        self.assertEqual(self.pids_of(p.pid), [(p.pid, "preload")] * 2)
        self.assertEqual(self.stats()[0], 2)
        out, err = p.communicate("", timeout=30)
        self.assertEqual((p.returncode, err), (0, ""))
        self.assertEqual(self.stats()[0], 0)

    def test_the_sqlite3_shell_is_counted_and_answers_pragmas(self):
        r = self.run_ctl("sqlite3", self.db,
                         "SELECT joined, process FROM pool_connections WHERE current",
                         "PRAGMA dbpool_max_connections")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "preload|sqlite3\n4\n", ""))

    def test_children_are_counted(self):
        script = ('sqlite3 "$1" "SELECT joined FROM pool_connections WHERE current"; '
                  '/usr/bin/python3 -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1])'
                  '.execute(\'SELECT joined FROM pool_connections WHERE current\')'
                  '.fetchone()[0])" "$1"')
        r = self.run_ctl("sh", "-c", script, "sh", self.db)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "preload\npreload\n", ""))

    def test_the_cap_holds_and_a_full_pool_says_so(self):
        code = textwrap.dedent("""\
            import sqlite3, sys
            uri = "file:%s?dbpool_timeout=150" % sys.argv[1]
            held = [sqlite3.connect(uri, uri=True) for _ in range(2)]
            try:
                sqlite3.connect(uri, uri=True)
            except sqlite3.OperationalError as e:
                print(e.sqlite_errorname, e)
            """)
        r = self.run_ctl("--max-connections", "2", "--", "/usr/bin/python3", "-c", code,
                         self.db)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertRegex(r.stdout, r"^SQLITE_BUSY automatic extension loading failed: "
                         r"dbpool: pool full: all 2 connections to %s are in use "
                         r"\(waited \d+ ms\)\n$" % self.db)

    def test_options_are_the_settings_of_pools_the_command_creates(self):
        r = self.run_ctl("--max-connections=7", "--timeout", "250", "sqlite3", self.db,
                         "SELECT max_connections, acquire_timeout_ms FROM pool_stats "
                         "WHERE database = '%s'" % self.db)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "7|250\n", ""))
        # The pool exists now: it keeps its settings.
        r = self.run_ctl("--max-connections", "3", "sqlite3", self.db,
                         "SELECT max_connections FROM pool_stats WHERE database = '%s'"
                         % self.db)
        self.assertEqual(r.stdout, "7\n")

    @unittest.skipUnless(shutil.which("php"), "php-cli is not installed (apt-get install "
                         "php-cli php-sqlite3)")
    def test_php_cli_is_counted_sqlite3_and_pdo(self):
        code = ('$a = new SQLite3($argv[1]); $b = new PDO("sqlite:" . $argv[1]);'
                'echo $a->querySingle("SELECT joined FROM pool_connections WHERE current"),'
                ' " ", $b->query("SELECT count(*) FROM pool_connections WHERE pid = "'
                ' . getmypid())->fetchColumn(), "\\n";')
        r = self.run_ctl("php", "-r", code, self.db)
        if "Class \"SQLite3\" not found" in r.stdout + r.stderr:
            self.skipTest("php-sqlite3 is not installed")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "preload 2\n", ""))

    def test_no_extension_no_open(self):
        """Asked for the cap but cannot load it: opens fail and say why."""
        r = self.run_ctl("sqlite3", ":memory:", env=dict(self.env, DBPOOL_EXTENSION="/nonexistent/dbpool.so"))
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "dbpoolctl: run: the dbpool extension "
                         "/nonexistent/dbpool.so is missing (the preload library loads "
                         "dbpool.so from its own directory, or $DBPOOL_EXTENSION)\n")
        # Preloaded by hand, past dbpoolctl's check.
        s = subprocess.run(["sqlite3", self.db, "SELECT 1"], capture_output=True, text=True,
                           timeout=60, env=dict(self.env, LD_PRELOAD=PRELOAD,
                                                DBPOOL_EXTENSION="/nonexistent/dbpool.so"))
        self.assertEqual(s.returncode, 1)
        self.assertTrue(s.stderr.startswith(
            'Error: unable to open database "%s": automatic extension loading failed: '
            "dbpool: preload: cannot load the dbpool extension /nonexistent/dbpool.so: "
            % self.db), s.stderr)
        p = subprocess.run(["/usr/bin/python3", "-c", "import sqlite3\n"
                            "try:\n    sqlite3.connect(':memory:')\n"
                            "except sqlite3.OperationalError as e:\n    print(e)"],
                           capture_output=True, text=True, timeout=60,
                           env=dict(self.env, LD_PRELOAD=PRELOAD,
                                    DBPOOL_EXTENSION="/nonexistent/dbpool.so"))
        self.assertIn("dbpool: preload: cannot load the dbpool extension", p.stdout)

    def test_usage_and_exit_statuses(self):
        cases = [
            ([], 2, "dbpoolctl: run: missing COMMAND"),
            (["--max-connections", "0", "true"], 2, "dbpoolctl: run: --max-connections: "
             "max_connections=0 is out of range (1..4096)"),
            (["--timeout", "soon", "true"], 2, "dbpoolctl: run: --timeout: invalid value "
             "'soon' for acquire_timeout_ms: expected an integer from 0 to 86400000"),
            (["--max-connections"], 2, "dbpoolctl: run: --max-connections needs a value"),
            (["--nope", "true"], 2, "dbpoolctl: run: unknown option '--nope'"),
            (["--", "no-such-program-dbpool"], 127, "dbpoolctl: run: cannot run "
             "'no-such-program-dbpool': No such file or directory"),
        ]
        for args, status, message in cases:
            r = self.run_ctl(*args)
            self.assertEqual((r.returncode, r.stdout), (status, ""), args)
            self.assertTrue(r.stderr.startswith(message), (args, r.stderr))
        r = self.run_ctl("sh", "-c", "exit 7")
        self.assertEqual(r.returncode, 7)
        r = self.run_ctl("true", env=dict(self.env, DBPOOL_PRELOAD="/nonexistent/p.so"))
        self.assertEqual((r.returncode, r.stderr), (1, "dbpoolctl: run: cannot find "
                         "libdbpool-preload.so (looked at /nonexistent/p.so (DBPOOL_PRELOAD)); "
                         "set DBPOOL_PRELOAD to its path\n"))
        # A run inside a run adds the library once; other preloads are kept.
        r = self.run_ctl("sh", "-c", "echo $LD_PRELOAD",
                         env=dict(self.env, LD_PRELOAD="%s:libc.so.6" % os.path.realpath(PRELOAD)))
        self.assertEqual(r.stdout, "%s:libc.so.6\n" % os.path.realpath(PRELOAD))
        r = self.run_ctl("sh", "-c", "echo $LD_PRELOAD", env=dict(self.env, LD_PRELOAD="libc.so.6"))
        self.assertEqual(r.stdout, "%s:libc.so.6\n" % os.path.realpath(PRELOAD))

    def test_a_program_that_also_loads_dbpool_counts_once(self):
        """Needs issue 10 item 6 (loading again on a counted connection is a
        no-op, even in a full pool); skipped until it is in."""
        code = ("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n"
                "c.enable_load_extension(True)\nc.load_extension(sys.argv[2])\n"
                "print(c.execute('SELECT active FROM pool_stats WHERE database = ?',"
                " (sys.argv[1],)).fetchone()[0])\n")
        r = self.run_ctl("--max-connections", "1", "--timeout", "200",
                         "/usr/bin/python3", "-c", code, self.db, EXT)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "1\n", ""))


if __name__ == "__main__":
    unittest.main()
