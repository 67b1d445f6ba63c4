"""dbpoolctl run's own options and where it finds its libraries
(cli/run.c): NAME=VALUE and separate values, prefixes that are not options,
the preload library found beside dbpoolctl, in ../lib/dbpool/ or in
../lib/MULTIARCH/dbpool/ (an installed layout built from copies), every
place it looked named when it is nowhere, empty variables meaning "not
set", LD_PRELOAD entries matched whole, and a command that exists but
cannot be executed (126)."""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import BUILD, DBPOOLCTL, PoolTestCase  # noqa: E402

PRELOAD = os.path.realpath(os.path.join(BUILD, "libdbpool-preload.so"))
EXTENSION = os.path.realpath(os.path.join(BUILD, "dbpool.so"))
COUNTED = "SELECT joined FROM pool_connections WHERE current"


class RunOptionsAndLibraryLookup(PoolTestCase):
    max_connections = "4"

    def run_ctl(self, *args, ctl=DBPOOLCTL, env=None):
        return subprocess.run([ctl, "run"] + list(args), capture_output=True, text=True,
                              env=env or self.env, timeout=60)

    def test_option_values_inline_or_separate(self):
        query = ("SELECT max_connections, acquire_timeout_ms FROM pool_stats "
                 "WHERE database = '%s'" % self.db)
        r = self.run_ctl("--timeout=321", "--max-connections", "6", "sqlite3", self.db, query)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "6|321\n", ""))
        for args, message in [
                (["--timeout"], "dbpoolctl: run: --timeout needs a value"),
                (["--timeout=", "true"], "dbpoolctl: run: --timeout: invalid value '' for "
                 "acquire_timeout_ms"),
                (["--max-connections=5000", "true"], "dbpoolctl: run: --max-connections: "
                 "max_connections=5000 "
                 "is out of range (1..4096)"),
                # a prefix or an extension of an option's name is not that option
                (["--max", "3", "true"], "dbpoolctl: run: unknown option '--max'"),
                (["--time=3", "true"], "dbpoolctl: run: unknown option '--time=3'"),
                (["--timeouts=3", "true"], "dbpoolctl: run: unknown option '--timeouts=3'"),
                (["--max-connectionsX", "true"],
                 "dbpoolctl: run: unknown option '--max-connectionsX'")]:
            r = self.run_ctl(*args)
            self.assertEqual((r.returncode, r.stdout), (2, ""), args)
            self.assertTrue(r.stderr.startswith(message), (args, r.stderr))

    def test_a_command_that_cannot_be_executed_exits_126(self):
        script = os.path.join(self.dir, "not-executable.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\necho ran\n")
        os.chmod(script, 0o644)
        r = self.run_ctl(script)
        self.assertEqual((r.returncode, r.stdout), (126, ""))
        self.assertEqual(r.stderr, "dbpoolctl: run: cannot run '%s': Permission denied\n"
                         % script)

    def test_empty_variables_mean_the_default_places(self):
        env = dict(self.env, DBPOOL_PRELOAD="", DBPOOL_EXTENSION="")
        r = self.run_ctl("sqlite3", self.db, COUNTED, env=env)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "preload\n", ""))

    def test_the_library_is_found_in_each_installed_place(self):
        root = os.path.join(self.dir, "prefix")
        os.makedirs(os.path.join(root, "bin"))
        ctl = os.path.join(root, "bin", "dbpoolctl")
        shutil.copy2(DBPOOLCTL, ctl)
        # Nowhere yet: every place looked at is named.
        r = self.run_ctl("true", ctl=ctl)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        m = re.match(r"dbpoolctl: run: cannot find libdbpool-preload\.so \(looked at (.*)\); "
                     r"set DBPOOL_PRELOAD to its path\n$", r.stderr)
        self.assertIsNotNone(m, r.stderr)
        places = m.group(1).split(", ")
        self.assertEqual(places[:2], [os.path.join(root, "bin", "libdbpool-preload.so"),
                                      os.path.join(root, "bin", "../lib/dbpool",
                                                   "libdbpool-preload.so")])
        multiarch = None
        if len(places) == 3:  # built with a multiarch directory (Debian)
            m = re.match(re.escape(root) + r"/bin/\.\./lib/([^/]+)/dbpool/"
                         r"libdbpool-preload\.so$", places[2])
            self.assertIsNotNone(m, places[2])
            multiarch = m.group(1)
        self.assertEqual(len(places), 3 if multiarch else 2, places)
        for sub in (["lib", "dbpool"], ["lib", multiarch, "dbpool"] if multiarch else None):
            if not sub:
                continue
            libdir = os.path.join(root, *sub)
            os.makedirs(libdir)
            for lib in (PRELOAD, EXTENSION):
                os.symlink(lib, os.path.join(libdir, os.path.basename(lib)))
            r = self.run_ctl("sh", "-c", "echo $LD_PRELOAD; sqlite3 \"$0\" \"%s\"" % COUNTED,
                             self.db, ctl=ctl)
            self.assertEqual((r.returncode, r.stderr), (0, ""), sub)
            self.assertEqual(r.stdout, "%s/libdbpool-preload.so\npreload\n"
                             % os.path.realpath(libdir), sub)
            shutil.rmtree(libdir)
        # Beside dbpoolctl comes first.
        os.symlink(PRELOAD, os.path.join(root, "bin", "libdbpool-preload.so"))
        r = self.run_ctl("sh", "-c", "echo $LD_PRELOAD", ctl=ctl,
                         env=dict(self.env, DBPOOL_EXTENSION=EXTENSION))
        self.assertEqual((r.returncode, r.stdout),
                         (0, "%s/bin/libdbpool-preload.so\n" % os.path.realpath(root)))

    def test_ld_preload_entries_are_matched_whole(self):
        # Already there as an entry separated by ':' or ' ': kept as it is.
        for old in ("libc.so.6 %s" % PRELOAD, "%s libc.so.6" % PRELOAD,
                    "libc.so.6:%s" % PRELOAD):
            r = self.run_ctl("sh", "-c", "echo \"$LD_PRELOAD\"",
                             env=dict(self.env, LD_PRELOAD=old))
            self.assertEqual((r.returncode, r.stdout), (0, old + "\n"), old)
        # Set but empty: the library alone.
        r = self.run_ctl("sh", "-c", "echo \"$LD_PRELOAD\"", env=dict(self.env, LD_PRELOAD=""))
        self.assertEqual((r.returncode, r.stdout), (0, PRELOAD + "\n"))
        # Only a part of an entry: the library is added in front.
        for old in (PRELOAD + ".old", "/x" + PRELOAD, "/x%s:%s.old" % (PRELOAD, PRELOAD)):
            r = self.run_ctl("sh", "-c", "echo \"$LD_PRELOAD\"",
                             env=dict(self.env, LD_PRELOAD=old))
            self.assertEqual((r.returncode, r.stdout), (0, "%s:%s\n" % (PRELOAD, old)), old)



def can_unshare_mounts():
    try:
        return subprocess.run(["unshare", "-m", "umount", "-l", "/proc"], capture_output=True,
                              timeout=30).returncode == 0
    except OSError:
        return False


@unittest.skipUnless(os.geteuid() == 0 and can_unshare_mounts(),
                     "needs root and unshare -m (a private mount namespace)")
class RunWithoutProc(PoolTestCase):
    """Where /proc is not mounted (a minimal container), run cannot find
    its own directory: it says so, and DBPOOL_PRELOAD still works."""

    def test_no_proc_needs_dbpool_preload(self):
        def run(env):
            return subprocess.run(["unshare", "-m", "sh", "-c",
                                   "umount -l /proc && exec \"$@\"", "sh", DBPOOLCTL, "run",
                                   "sh", "-c", "echo \"$LD_PRELOAD\""],
                                  capture_output=True, text=True, env=env, timeout=60)
        r = run(self.env)
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (1, "", "dbpoolctl: run: cannot find libdbpool-preload.so (looked at "
                          "nowhere: /proc/self/exe is unreadable); set DBPOOL_PRELOAD to its "
                          "path\n"))
        r = run(dict(self.env, DBPOOL_PRELOAD=PRELOAD))
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, PRELOAD + "\n", ""))


if __name__ == "__main__":
    unittest.main(verbosity=2)
