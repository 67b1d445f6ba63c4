"""What list, status and metrics show in less common states: a pool named
by its segment once its database is gone (and removed by that name), more
pools than the first allocation holds, paused pools, a pool without
holders, the writer queue's writing and waiting holders, the writer queue
switched off, the idle connection of an in-process C pool (libdbpool
through ctypes), and a pool that does not exist."""
import json
import os
import subprocess
import sys
import textwrap
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import BUILD, PoolTestCase, wait_until  # noqa: E402
from test_dbpoolctl import parse_prometheus  # noqa: E402


class PoolsNamedBySegment(PoolTestCase):

    def test_status_and_rm_by_segment_name_once_the_database_is_gone(self):
        self.assertEqual(self.ctl("set", self.db, "max_connections=2").returncode, 0)
        seg = json.loads(self.ctl("status", self.db, "--json").stdout)["segment"]
        self.assertTrue(seg.startswith("/dbpool."), seg)
        os.unlink(self.db)
        r = self.ctl("status", self.db)
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not exist", r.stderr)
        for name in (seg, seg[1:]):  # with or without the leading slash
            doc = json.loads(self.ctl("status", name, "--json").stdout)
            self.assertEqual((doc["segment"], doc["database"], doc["file"],
                              doc["stats"]["max_connections"]), (seg, self.db, "gone", 2))
        r = self.ctl("rm", seg[1:])
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, "removed the pool of %s\n" % seg[1:], ""))
        self.assertEqual(self.ctl("list").stdout, "no pools\n")
        r = self.ctl("rm", seg)
        self.assertEqual(r.returncode, 1)
        self.assertIn("rm: ", r.stderr)

    def test_a_file_named_like_a_segment_is_a_database(self):
        # An existing file wins over the segment reading of its name.
        name = "dbpool.%s.1.2.3" % self.ns
        path = os.path.join(self.dir, name)
        subprocess.run(["sqlite3", path, "CREATE TABLE t(x)"], check=True)
        r = subprocess.run([self.ctl_path(), "set", name, "max_connections=3"],
                           capture_output=True, text=True, env=self.env, cwd=self.dir,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([self.ctl_path(), "status", name, "--json"], capture_output=True,
                           text=True, env=self.env, cwd=self.dir, timeout=30)
        self.assertEqual(json.loads(r.stdout)["database"], path)

    def ctl_path(self):
        return os.path.join(BUILD, "dbpoolctl")


class ListingsOfManyPools(PoolTestCase):

    def test_more_pools_than_the_first_allocation(self):
        self.assertEqual(self.ctl("list", "--json").stdout, "[]\n")
        dbs = []
        for i in range(11):
            path = os.path.join(self.dir, "db%02d.db" % i)
            subprocess.run(["sqlite3", path, "CREATE TABLE t(x)"], check=True)
            settings = ["max_connections=%d" % (i + 1)] + (["paused=1"] if i % 2 else [])
            self.assertEqual(self.ctl("set", path, *settings).returncode, 0)
            dbs.append(path)
        pools = {p["database"]: p for p in json.loads(self.ctl("list", "--json").stdout)}
        self.assertEqual(sorted(pools), dbs)
        for i, path in enumerate(dbs):
            self.assertEqual((pools[path]["max_connections"], pools[path]["paused"]),
                             (i + 1, bool(i % 2)))
        rows = self.ctl("list").stdout.splitlines()[1:]
        self.assertEqual(len(rows), 11)
        for row in rows:
            fields = row.split()
            i = dbs.index(fields[0])
            self.assertEqual((fields[1], fields[5]), ("0/%d" % (i + 1), "yes" if i % 2 else "no"))
        fams = parse_prometheus(self.ctl("metrics").stdout)
        paused = {l["database"]: v for _, l, v in fams["dbpool_paused"]["samples"]}
        self.assertEqual(paused, {path: float(i % 2) for i, path in enumerate(dbs)})
        self.assertEqual(len([s for s in fams["dbpool_wait_seconds"]["samples"]
                              if s[0] == "dbpool_wait_seconds_count"]), 11)


class StatusInLessCommonStates(PoolTestCase):

    def test_a_pool_without_holders(self):
        self.assertEqual(self.ctl("set", self.db, "max_connections=2").returncode, 0)
        text = self.ctl("status", self.db).stdout
        self.assertTrue(text.endswith("\nno holders or waiters\n"), text)
        doc = json.loads(self.ctl("status", self.db, "--json").stdout)
        self.assertEqual(doc["connections"], [])
        r = self.ctl("set", self.db, "=5")
        self.assertEqual(r.returncode, 2)
        self.assertIn("set: '=5' is not NAME=VALUE", r.stderr)

    def test_metrics_of_a_database_without_a_pool(self):
        r = self.ctl("metrics", self.db)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertIn("metrics: no pool for %s" % self.db, r.stderr)

    def test_writers_writing_and_waiting(self):
        subprocess.run(["sqlite3", self.db, "PRAGMA journal_mode=WAL"], check=True,
                       capture_output=True)
        a = self.shell()
        a.stdin.write(".open %s\nPRAGMA busy_timeout=10000;\n"
                      "BEGIN IMMEDIATE; INSERT INTO t VALUES(1);\n" % self.db)
        a.stdin.flush()

        def writers():
            doc = json.loads(self.ctl("status", self.db, "--json").stdout)
            return {c["pid"]: c["writer"] for c in doc["connections"] if c["writer"]}
        wait_until(lambda: writers().get(a.pid) == "writing", what="the shell writing")
        b = self.python("c = sqlite3.connect(DB, timeout=10, isolation_level=None)\n"
                        "c.execute('BEGIN IMMEDIATE')\n"
                        "c.execute('INSERT INTO t VALUES (2)')\n"
                        "c.execute('COMMIT')\n"
                        "print('committed')\n")
        wait_until(lambda: writers().get(b.pid) == "waiting", what="python waiting its turn")
        self.assertEqual(writers(), {a.pid: "writing", b.pid: "waiting"})
        rows = {int(line.split()[0]): line.split() for line in
                self.ctl("status", self.db).stdout.splitlines() if line[:1].isdigit()}
        header = [line for line in self.ctl("status", self.db).stdout.splitlines()
                  if line.startswith("PID ")][0].split()
        col = header.index("WRITER")
        self.assertEqual(rows[b.pid][col], "waiting")
        self.assertIn("writing", rows[a.pid])
        a.stdin.write("COMMIT;\n")
        a.stdin.flush()
        self.assertEqual(b.communicate(timeout=30), ("committed\n", ""))

    def test_writer_queue_off_in_metrics_and_status(self):
        for value, expected in (("off", 0), ("on", 1)):
            self.assertEqual(self.ctl("set", self.db, "writer_queue=" + value).returncode, 0)
            fams = parse_prometheus(self.ctl("metrics", self.db).stdout)
            [(_, _, v)] = fams["dbpool_writer_queue_active"]["samples"]
            self.assertEqual(v, expected)
            st = json.loads(self.ctl("status", self.db, "--json").stdout)["stats"]
            self.assertEqual(st["writer_queue"], value)


class InProcessPoolHolders(PoolTestCase):
    """A process using the C pool (libdbpool.so through ctypes): its
    connection, released to the pool, is an idle holder."""

    def test_an_idle_connection_of_a_c_pool(self):
        code = textwrap.dedent("""\
            import ctypes, sys
            lib = ctypes.CDLL(sys.argv[1])
            pool, db = ctypes.c_void_p(), ctypes.c_void_p()
            assert lib.dbpool_open(sys.argv[2].encode(), None, ctypes.byref(pool)) == 0
            assert lib.dbpool_acquire(pool, ctypes.byref(db)) == 0
            assert lib.dbpool_release(pool, db) == 0
            print("in", flush=True)
            sys.stdin.read()
            assert lib.dbpool_close(pool) == 0
            """)
        p = subprocess.Popen(["/usr/bin/python3", "-c", code,
                              os.path.join(BUILD, "libdbpool.so"), self.db],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env,
                             text=True)
        self.procs.append(p)
        self.assertEqual(p.stdout.readline(), "in\n")
        doc = json.loads(self.ctl("status", self.db, "--json").stdout)
        self.assertEqual([(c["pid"], c["state"], c["joined"]) for c in doc["connections"]],
                         [(p.pid, "idle", "c-pool")])
        self.assertEqual((doc["stats"]["active"], doc["stats"]["idle"]), (1, 1))
        [row] = [line for line in self.ctl("status", self.db).stdout.splitlines()
                 if line.startswith(str(p.pid))]
        self.assertEqual(row.split()[4], "idle")
        p.stdin.close()
        self.assertEqual(p.wait(timeout=30), 0)
        self.assertEqual(self.stats()[0], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
