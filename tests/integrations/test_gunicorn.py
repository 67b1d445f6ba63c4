"""The Flask recipe under a real gunicorn (Debian's), as docs/integrations.md
describes it: workers (and their threads) share the cap and every request
succeeds; --preload (dbpool loaded in the master before the fork) counts the
workers' connections as theirs; a HUP overlaps old and new workers under one
cap without failing requests; under dbpoolctl run the connections are
'preload'."""
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from integlib import (DBPOOLCTL, IntegTestCase, http_get, need,  # noqa: E402
                      need_python_module, wait_for_socket, wait_until)

TESTAPP = """\
import os
from app import app, db

@app.get("/who")
def who():
    joined = db().execute("SELECT joined FROM pool_connections WHERE current").fetchone()[0]
    return "%d %s\\n" % (os.getpid(), joined)
"""


class GunicornTest(IntegTestCase):
    max_connections = "3"  # below 2 workers x 2 threads

    def setUp(self):
        need("gunicorn", "gunicorn python3-flask")
        need_python_module("flask", "python3-flask")
        super().setUp()
        for name, dest in (("dbpool_boot.py", None), ("flask_app.py", "app.py"),
                           ("gunicorn.conf.py", None)):
            self.write(name, dest=dest)
        self.write(None, TESTAPP, dest="testapp.py")
        self.sock = os.path.join(self.dir, "web.sock")
        self.env.update(WEB_WORKERS="2", WEB_THREADS="2")

    def start(self, *extra, prefix=()):
        p = self.spawn(list(prefix) + ["gunicorn", "-c", "gunicorn.conf.py", "-b",
                                       "unix:" + self.sock, "--log-level", "warning"]
                       + list(extra) + ["testapp:app"])
        wait_for_socket(self.sock, p)
        return p

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)

    def hammer(self, clients, requests=None, seconds=None):
        """POST /hits from clients threads; returns them and the statuses."""
        statuses, lock = [], threading.Lock()
        stop_at = time.monotonic() + seconds if seconds else None

        def client(n):
            i = 0
            while (stop_at and time.monotonic() < stop_at) or (requests and i < n):
                status, _, _ = http_get(self.sock, "/hits", "POST")
                with lock:
                    statuses.append(status)
                i += 1
        per = (requests or 0) // clients
        threads = [threading.Thread(target=client, args=(per,)) for _ in range(clients)]
        for t in threads:
            t.start()
        return threads, statuses

    def statuses(self, clients, requests):
        """requests POST /hits from clients threads: their statuses."""
        threads, statuses = self.hammer(clients, requests=requests)
        for t in threads:
            t.join(120)
        return statuses

    def whos(self, n=12):
        return {tuple(http_get(self.sock, "/who")[2].split()) for _ in range(n)}

    def count(self):
        return int(subprocess.run(["sqlite3", self.db, "SELECT count(*) FROM hits"],
                                  capture_output=True, text=True).stdout)

    def check_workers(self, master, expect_joined):
        who = self.whos()
        pids = {int(p) for p, _ in who}
        self.assertNotIn(master.pid, pids)
        self.assertEqual({j for _, j in who}, {expect_joined})
        return pids

    def test_workers_share_the_cap_and_every_request_succeeds(self):
        p = self.start()
        self.check_workers(p, "auto")
        self.assertEqual(self.statuses(8, 80), [200] * 80)
        self.assertEqual(self.count(), 80)
        self.assertLessEqual(self.peak(), 3)
        self.stop(p)
        self.assertEqual(self.stats()[0], 0)

    def test_preload_loads_in_the_master_and_counts_the_workers(self):
        p = self.start("--preload")
        self.check_workers(p, "auto")
        # The master loaded dbpool (on an in-memory connection) and holds nothing.
        self.assertNotIn(p.pid, [h[0] for h in self.holders()])
        self.assertEqual(self.statuses(6, 36), [200] * 36)
        self.assertLessEqual(self.peak(), 3)
        self.stop(p)

    def test_a_hup_overlaps_old_and_new_workers_without_failures(self):
        p = self.start()
        old = self.check_workers(p, "auto")
        threads, statuses = self.hammer(clients=6, seconds=4)
        time.sleep(1)
        p.send_signal(signal.SIGHUP)
        for t in threads:
            t.join(120)
        new = wait_until(lambda: (lambda w: w if w and not (w & old) else None)(
            {int(pid) for pid, _ in self.whos(6)}), timeout=60, what="new workers")
        self.assertTrue(new)
        self.assertEqual(set(statuses), {200})
        self.assertGreater(len(statuses), 10)
        self.assertLessEqual(self.peak(), 3)
        self.stop(p)

    def test_under_dbpoolctl_run_connections_are_preload(self):
        p = self.start(prefix=(DBPOOLCTL, "run", "--"))
        self.check_workers(p, "preload")
        self.assertEqual(self.statuses(6, 24), [200] * 24)
        self.assertLessEqual(self.peak(), 3)
        self.stop(p)


if __name__ == "__main__":
    unittest.main()
