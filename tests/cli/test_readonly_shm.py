"""dbpoolctl where /dev/shm is mounted read-only (a container's view of the
host's pools): the reading commands fall back to attaching read-only and
show the same figures; the steering commands fail with the cause and change
nothing. Runs dbpoolctl in a private mount namespace (unshare -m, as root);
skipped where that is not allowed."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import DBPOOLCTL, PoolTestCase  # noqa: E402

READ_ONLY_SHM = ("mount --bind /dev/shm /dev/shm && "
                 "mount -o remount,bind,ro /dev/shm && exec \"$@\"")


def can_unshare():
    try:
        return subprocess.run(["unshare", "-m", "sh", "-c", READ_ONLY_SHM, "sh", "true"],
                              capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False


@unittest.skipUnless(os.geteuid() == 0 and can_unshare(),
                     "needs root and unshare -m (a private mount namespace)")
class ReadingCommandsOnAReadOnlyDevShm(PoolTestCase):

    def ro_ctl(self, *args):
        return subprocess.run(["unshare", "-m", "sh", "-c", READ_ONLY_SHM, "sh", DBPOOLCTL]
                              + list(args), capture_output=True, text=True, env=self.env,
                              timeout=30)

    def test_reading_commands_attach_read_only(self):
        s = self.shell(label="seen-read-only")
        self.assertEqual(self.ctl("set", self.db, "max_connections=5").returncode, 0)
        for args in (("status", self.db, "--json"), ("list", "--json")):
            rw, ro = self.ctl(*args), self.ro_ctl(*args)
            self.assertEqual((ro.returncode, ro.stderr), (0, ""), args)
            a, b = json.loads(rw.stdout), json.loads(ro.stdout)
            if args[0] == "status":
                self.assertEqual(b["stats"]["max_connections"], 5)
                self.assertEqual([(c["pid"], c["label"]) for c in b["connections"]],
                                 [(s.pid, "seen-read-only")])
                a["stats"].pop("created_at"), b["stats"].pop("created_at")
                self.assertEqual(b["stats"], a["stats"])
            else:
                self.assertEqual(b, a)
        text = self.ro_ctl("status", self.db)
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertIn("  max_connections     5\n", text.stdout)
        for args in (("metrics",), ("metrics", self.db)):
            r = self.ro_ctl(*args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn('dbpool_active_connections{database="%s"} 1\n' % self.db, r.stdout)
        r = self.ro_ctl("watch", self.db, "--count", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(" %s active=1/5 " % self.db, r.stdout)

    def test_steering_commands_fail_and_change_nothing(self):
        self.assertEqual(self.ctl("set", self.db, "max_connections=5").returncode, 0)
        for args in (("pause", self.db), ("reap", self.db),
                     ("set", self.db, "max_connections=2")):
            r = self.ro_ctl(*args)
            self.assertEqual((r.returncode, r.stdout), (1, ""), args)
            self.assertTrue(r.stderr.startswith("dbpoolctl: %s: cannot open pool segment "
                                                % args[0]), r.stderr)
            self.assertTrue(r.stderr.endswith(": Read-only file system\n"), r.stderr)
        st = json.loads(self.ctl("status", self.db, "--json").stdout)["stats"]
        self.assertEqual((st["max_connections"], st["paused"]), (5, 0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
