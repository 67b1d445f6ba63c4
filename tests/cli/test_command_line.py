"""dbpoolctl's command line (cli/main.c): global options before or after the
command word, the namespace option, help in every spelling, the integer
options' bounds, options a command does not take, argument counts. Usage
errors exit 2, name the command and change nothing."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import DBPOOLCTL, ROOT, PoolTestCase  # noqa: E402


class CommandLineParsing(PoolTestCase):

    def usage_error(self, args, message, env=None):
        r = subprocess.run([DBPOOLCTL] + list(args), capture_output=True, text=True,
                           env=env or self.env, timeout=30)
        self.assertEqual((r.returncode, r.stdout), (2, ""), args)
        self.assertIn(message, r.stderr, args)
        return r.stderr

    def test_short_version_and_help_options(self):
        with open(os.path.join(ROOT, "VERSION")) as f:
            version = f.read().strip()
        r = self.ctl("-V")
        self.assertEqual((r.returncode, r.stdout), (0, "dbpoolctl %s\n" % version))
        overview = self.ctl("--help").stdout
        for args in (("-h",), ("help",)):
            r = self.ctl(*args)
            self.assertEqual((r.returncode, r.stdout), (0, overview), args)
        self.assertTrue(overview.startswith("usage: dbpoolctl [--namespace NAME] COMMAND"))
        # help before or after the command word: that command's help
        status_help = self.ctl("status", "--help").stdout
        self.assertTrue(status_help.startswith("usage: dbpoolctl status DB [--json]\n"))
        for args in (("help", "status"), ("-h", "status"), ("status", "-h")):
            r = self.ctl(*args)
            self.assertEqual((r.returncode, r.stdout), (0, status_help), args)

    def test_help_of_run_comes_before_its_own_parsing(self):
        # run parses what follows it itself; help given before it still
        # prints run's help instead of running anything.
        marker = os.path.join(self.dir, "ran")
        for args in (("--help", "run", "touch", marker), ("help", "run", "touch", marker),
                     ("run", "--help"), ("run", "-h"), ("run", "--timeout", "5", "-h")):
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 0, (args, r.stderr))
            self.assertTrue(r.stdout.startswith("usage: dbpoolctl run [--max-connections N]"),
                            (args, r.stdout))
        self.assertFalse(os.path.exists(marker))

    def test_namespace_option_chooses_the_pools(self):
        self.assertEqual(self.ctl("set", self.db, "max_connections=6").returncode, 0)
        other = dict(self.env, DBPOOL_NAMESPACE=self.ns + "x")
        # In another namespace, nothing; --namespace / -n bring ours back.
        r = subprocess.run([DBPOOLCTL, "list"], capture_output=True, text=True, env=other,
                           timeout=30)
        self.assertEqual(r.stdout, "no pools\n")
        for opt in ("--namespace", "-n"):
            for args in ([opt, self.ns, "list", "--json"], ["list", opt, self.ns, "--json"]):
                r = subprocess.run([DBPOOLCTL] + args, capture_output=True, text=True,
                                   env=other, timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr)
                [pool] = json.loads(r.stdout)
                self.assertEqual((pool["database"], pool["max_connections"]), (self.db, 6))
        self.usage_error(["list", "-n"], "dbpoolctl: -n needs a name")
        self.usage_error(["--namespace"], "dbpoolctl: --namespace needs a name")

    def test_an_invalid_namespace_is_a_usage_error(self):
        for ns in ("has/slash", "x" * 33):
            err = self.usage_error(["list"], "DBPOOL_NAMESPACE='%s' is invalid: use 1 to 32 "
                                   "letters, digits, '-' or '_'" % ns,
                                   env=dict(self.env, DBPOOL_NAMESPACE=ns))
            self.assertTrue(err.startswith("dbpoolctl: DBPOOL_NAMESPACE="), err)
        self.usage_error(["-n", "bad.name", "set", self.db, "max_connections=2"],
                         "DBPOOL_NAMESPACE='bad.name' is invalid")
        self.assertIsNone(self.stats())  # nothing was created

    def test_integer_options_are_checked_before_the_command_runs(self):
        for args, message in [
                (("watch", self.db, "--interval"), "watch: --interval needs an integer from "
                 "10 to 3600000, not ''"),
                (("watch", self.db, "--count"), "watch: --count needs an integer from 1 to "
                 "1000000000, not ''"),
                (("watch", self.db, "--interval", "9"), "not '9'"),
                (("watch", self.db, "--interval", "3600001"), "not '3600001'"),
                (("watch", self.db, "--count", "0"), "not '0'"),
                (("watch", self.db, "--count", "12x"), "not '12x'"),
                (("watch", self.db, "--count", ""), "not ''"),
                (("watch", self.db, "--count", "99999999999999999999999"),
                 "not '99999999999999999999999'"),
                # before the command word: no command to name yet
                (("--count", "x", "watch", self.db), "dbpoolctl: --count needs an integer"),
                (("--interval", "5", "watch", self.db), "dbpoolctl: --interval needs")]:
            self.usage_error(args, message)
        # Valid, before the command word too.
        r = self.ctl("--count", "1", "--interval", "10", "watch", self.db)
        self.assertEqual(r.returncode, 1)  # no pool yet: the options were fine
        self.assertIn("watch: no pool for %s" % self.db, r.stderr)

    def test_unknown_options_and_options_of_other_commands(self):
        err = self.usage_error(["--frobnicate"], "dbpoolctl: unknown option '--frobnicate' "
                               "(see dbpoolctl --help)")
        self.assertNotIn("usage: dbpoolctl", err)
        err = self.usage_error(["status", self.db, "-x"],
                               "dbpoolctl: status: unknown option '-x' (see dbpoolctl status "
                               "--help)\nusage: dbpoolctl status DB [--json]\n")
        for args, option in [(("list", "--dry-run"), "--dry-run"),
                             (("status", self.db, "--interval", "100"), "--interval"),
                             (("status", self.db, "--count", "3"), "--count"),
                             (("set", self.db, "paused=1", "--json"), "--json"),
                             (("gc", "--force"), "--force")]:
            self.usage_error(args, "%s is not an option of %s" % (option, args[0]))
        self.assertIsNone(self.stats())  # set refused: no pool created

    def test_a_lone_dash_is_an_argument_not_an_option(self):
        r = self.ctl("status", "-")
        self.assertEqual(r.returncode, 1)
        self.assertIn("status: database file", r.stderr)
        self.assertIn("does not exist", r.stderr)

    def test_argument_counts(self):
        self.usage_error(["set"], "set: missing arguments")
        self.usage_error(["set", self.db], "set: missing argument")
        self.usage_error(["reap"], "reap: missing argument")
        self.usage_error(["metrics", self.db, self.db], "unexpected argument")
        many = ["max_connections=%d" % (i % 9 + 1) for i in range(64)]
        self.usage_error(["set", self.db] + many, "set: too many arguments")
        self.assertIsNone(self.stats())
        # 63 settings after DB are the most: all checked, applied in order.
        r = self.ctl("set", self.db, *many[:63])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 63)
        self.assertEqual(self.stats()[2], 62 % 9 + 1)  # the last one


if __name__ == "__main__":
    unittest.main(verbosity=2)
