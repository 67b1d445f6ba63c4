"""Helpers shared by dbpool's Python tests: a fresh database and pool
namespace per test, sqlite3 shells that hold connections through the
extension, and an observer connection that reads pool_stats and
pool_connections without holding a slot itself."""
import glob
import os
import sqlite3
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("B", "build"))
EXT = os.path.join(BUILD, "dbpool")  # SQLite appends .so
DBPOOLCTL = os.path.join(BUILD, "dbpoolctl")


def wait_until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


class PoolTestCase(unittest.TestCase):
    """Each test: its own directory, app.db, namespace; cleaned up after."""
    serial = 0
    max_connections = "3"

    def setUp(self):
        PoolTestCase.serial += 1
        self.dir = tempfile.mkdtemp(prefix="dbpool-py-")
        self.db = os.path.join(self.dir, "app.db")
        self.ns = "%spy%d-%d" % (os.environ.get("DBPOOL_TEST_RUN", ""),
                                  os.getpid(), PoolTestCase.serial)
        self.env = dict(os.environ, DBPOOL_NAMESPACE=self.ns,
                        DBPOOL_MAX_CONNECTIONS=self.max_connections)
        self.env.pop("DBPOOL_ACQUIRE_TIMEOUT_MS", None)
        os.environ["DBPOOL_NAMESPACE"] = self.ns
        os.environ["DBPOOL_MAX_CONNECTIONS"] = self.max_connections
        # Made by a shell without the extension: once a test has loaded it,
        # every connection this process opens to a file counts.
        subprocess.run(["sqlite3", self.db, "CREATE TABLE t(x)"], check=True)
        self.procs = []
        self.view = sqlite3.connect(":memory:")
        self.view.enable_load_extension(True)
        self.view.load_extension(EXT)

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    f.close()
        self.view.close()
        for seg in glob.glob("/dev/shm/dbpool.%s.*" % self.ns):
            os.unlink(seg)
        subprocess.run(["rm", "-rf", self.dir])

    def stats(self):
        rows = self.view.execute(
            "SELECT active, waiting, max_connections, total_reclaimed, processes,"
            " total_timeouts FROM pool_stats WHERE database = ?", (self.db,)).fetchall()
        return rows[0] if rows else None

    def holders(self):
        return self.view.execute(
            "SELECT pid, process, state, current FROM pool_connections"
            " WHERE database = ?", (self.db,)).fetchall()

    def shell(self, label=None):
        """A sqlite3 shell that loads dbpool and keeps its connection open."""
        p = subprocess.Popen(["sqlite3", self.db], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=self.env, text=True)
        p.stdin.write(".load %s\n" % EXT)
        if label:
            p.stdin.write("SELECT dbpool_label('%s');\n" % label)
        p.stdin.flush()
        self.procs.append(p)
        wait_until(lambda: any(h[0] == p.pid for h in self.holders()),
                   what="shell %d to hold a slot" % p.pid)
        return p

    def close_shell(self, p):
        p.stdin.write(".quit\n")
        p.stdin.flush()
        p.wait(timeout=10)

    def python(self, code, *args):
        """A Python process running code (with EXT, DB in its globals)."""
        prelude = ("import sqlite3, sys, time\nEXT=%r\nDB=%r\n"
                   "boot = sqlite3.connect(':memory:')\n"
                   "boot.enable_load_extension(True)\nboot.load_extension(EXT)\n"
                   % (EXT, self.db))
        p = subprocess.Popen(["/usr/bin/python3", "-c", prelude + code] + list(args),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=self.env, text=True)
        self.procs.append(p)
        return p

    def try_connect(self, params):
        """Connect from a new Python process to 'file:DB?' + params; returns
        (milliseconds it took, the error message or "connected")."""
        p = self.python(
            "t0 = time.monotonic()\n"
            "try:\n"
            "    sqlite3.connect('file:' + DB + '?' + sys.argv[1], uri=True)\n"
            "    e = 'connected'\n"
            "except sqlite3.OperationalError as error:\n"
            "    e = error\n"
            "print('%.0f|%s' % ((time.monotonic() - t0) * 1000, e))\n", params)
        out, err = p.communicate(timeout=60)
        self.assertEqual(err, "")
        elapsed, message = out.strip().split("|", 1)
        return float(elapsed), message

    def ctl(self, *args, **kw):
        """Run dbpoolctl; returns the CompletedProcess."""
        return subprocess.run([DBPOOLCTL] + list(args), capture_output=True, text=True,
                              env=self.env, timeout=kw.get("timeout", 30))
