"""dbpoolctl gc, text and JSON: what it does with each kind of pool (in use,
database deleted, deleted while a process still uses it, renamed, replaced,
a segment that is not a valid pool), --dry-run removing nothing, and the
pools it removes really gone afterwards."""
import glob
import json
import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import PoolTestCase  # noqa: E402


class GarbageCollection(PoolTestCase):

    def make_db(self, name):
        path = os.path.join(self.dir, name)
        subprocess.run(["sqlite3", path, "CREATE TABLE t(x)"], check=True)
        return path

    def make_pool(self, name):
        """A database with a pool nobody is attached to."""
        path = self.make_db(name)
        r = self.ctl("set", path, "max_connections=5")
        self.assertEqual(r.returncode, 0, r.stderr)
        return path

    def segment_of(self, path):
        return json.loads(self.ctl("status", path, "--json").stdout)["segment"]

    def segments(self):
        return sorted("/" + os.path.basename(s)
                      for s in glob.glob("/dev/shm/dbpool.%s.*" % self.ns))

    def gc(self, *args):
        r = self.ctl("gc", *args)
        self.assertEqual((r.returncode, r.stderr), (0, ""), args)
        return r.stdout

    def test_no_pools(self):
        self.assertEqual(self.gc(), "no pools\n")
        self.assertEqual(self.gc("--json"), "[]\n")
        self.assertEqual(self.gc("--dry-run", "--json"), "[]\n")

    def test_each_kind_of_pool_text_and_json(self):
        self.shell()  # self.db: in use
        in_use = self.segment_of(self.db)
        deleted = self.make_pool("deleted.db")
        deleted_seg = self.segment_of(deleted)
        os.unlink(deleted)
        renamed = self.make_pool("renamed.db")
        renamed_seg = self.segment_of(renamed)
        os.rename(renamed, renamed + ".new")
        replaced = self.make_pool("replaced.db")
        replaced_seg = self.segment_of(replaced)
        other = self.make_db("other.db")
        os.rename(other, replaced)
        garbage = "/dbpool.%s.1.2.3" % self.ns
        with open("/dev/shm" + garbage, "wb") as f:
            f.write(b"not a pool" * 100)
        before = self.segments()
        self.assertEqual(len(before), 5)

        def entries(out):
            return {e["segment"]: e for e in json.loads(out)}

        dry = entries(self.gc("--dry-run", "--json"))
        self.assertEqual(set(dry), set(before))
        self.assertEqual(self.segments(), before)  # a dry run removes nothing
        self.assertEqual((dry[in_use]["database"], dry[in_use]["action"],
                          dry[in_use]["reason"]), (self.db, "kept", "in use by its database"))
        self.assertEqual((dry[deleted_seg]["database"], dry[deleted_seg]["action"],
                          dry[deleted_seg]["reason"]),
                         (deleted, "would remove", "database file is gone"))
        self.assertEqual((dry[replaced_seg]["action"], dry[replaced_seg]["reason"]),
                         ("would remove", "database file was replaced"))
        self.assertEqual((dry[renamed_seg]["database"], dry[renamed_seg]["action"],
                          dry[renamed_seg]["reason"]),
                         (renamed + ".new", "kept", "database renamed to %s.new" % renamed))
        self.assertEqual((dry[garbage]["database"], dry[garbage]["action"]), ("", "kept"))
        self.assertTrue(dry[garbage]["reason"].startswith(
            "pool segment %s failed validation" % garbage), dry[garbage]["reason"])

        text = self.gc("--dry-run").splitlines()
        self.assertEqual(len(text), 5, text)
        self.assertIn("would remove %s (%s): database file is gone" % (deleted, deleted_seg),
                      text)
        self.assertIn("kept         %s (%s): in use by its database" % (self.db, in_use), text)
        [g] = [line for line in text if garbage in line]
        self.assertTrue(g.startswith("kept         ? (%s): pool segment %s failed validation"
                                     % (garbage, garbage)), g)

        done = entries(self.gc("--json"))
        self.assertEqual({s: e["action"] for s, e in done.items()},
                         {in_use: "kept", deleted_seg: "removed", replaced_seg: "removed",
                          renamed_seg: "kept", garbage: "kept"})
        self.assertEqual(self.segments(), sorted([in_use, renamed_seg, garbage]))
        # The renamed database's pool now records its new name.
        self.assertEqual(self.segment_of(renamed + ".new"), renamed_seg)
        self.assertEqual(json.loads(self.ctl("status", renamed + ".new", "--json").stdout)
                         ["database"], renamed + ".new")

    def test_a_deleted_database_still_in_use_is_kept_until_its_user_dies(self):
        s = self.shell()
        seg = self.segment_of(self.db)
        os.unlink(self.db)
        self.assertEqual(self.gc(), "kept         %s (%s): database file is gone, but 1 live "
                         "process uses it\n" % (self.db, seg))
        s.send_signal(signal.SIGKILL)
        s.wait()
        self.assertEqual(self.gc(), "removed      %s (%s): database file is gone\n"
                         % (self.db, seg))
        self.assertEqual(self.segments(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
