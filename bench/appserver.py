"""bench/appserver.py -- the Flask recipe of docs/integrations.md under
gunicorn (4 workers x 4 threads, a connection per request: an INSERT and a
SELECT), 32 clients over a Unix socket, without dbpool and with a cap of 6,
in alternating rounds; then what a HUP does with a connection per request
and with connections kept per thread. Prints latency figures and ratios
measured in the same run; never pass/fail. Needs gunicorn and python3-flask
(skipped, saying so, without them). BENCH_QUICK=1: one short round each."""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integrations"))
from integlib import http_get, recipe  # noqa: E402

B = os.path.join(ROOT, os.environ.get("B", "build"))
QUICK = bool(os.environ.get("BENCH_QUICK"))
SECONDS = 4 if QUICK else 6
ROUNDS = 1 if QUICK else 2
CAP, CLIENTS = 6, 32

NO_DBPOOL = '''
import sqlite3
def load_dbpool():
    pass
def is_pool_full(exc):
    return False
'''
PER_THREAD = '''
import sqlite3, threading
import app as m
local = threading.local()
def db():
    if not hasattr(local, "conn"):
        local.conn = sqlite3.connect(m.DATABASE, timeout=5, check_same_thread=False)
    return local.conn
m.db = db
app = m.app
'''


def request(sock):
    t0 = time.monotonic()
    try:
        status = http_get(sock, "/hits", "POST")[0]
    except OSError as e:
        status = type(e).__name__
    return status, time.monotonic() - t0


def load(sock, seconds, hup=None):
    lat, statuses, lock = [], {}, threading.Lock()
    stop = time.monotonic() + seconds

    def client():
        while time.monotonic() < stop:
            status, dt = request(sock)
            with lock:
                lat.append(dt)
                statuses[status] = statuses.get(status, 0) + 1
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    if hup:
        time.sleep(seconds / 3)
        os.kill(hup, signal.SIGHUP)
    for t in threads:
        t.join()
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    return {"n": len(lat), "p50": pct(0.50), "p99": pct(0.99), "max": lat[-1] * 1000,
            "statuses": statuses}


def serve(d, module, env):
    sock = os.path.join(d, "web.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    p = subprocess.Popen(["gunicorn", "-c", "gunicorn.conf.py", "-b", "unix:" + sock,
                          "--log-level", "error", module + ":app"], cwd=d, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(sock) and request(sock)[0] == 200:
            return p, sock
        time.sleep(0.1)
    p.kill()
    raise SystemExit("gunicorn did not start")


def peak(db, env):
    out = subprocess.run([os.path.join(B, "dbpoolctl"), "status", db, "--json"], env=env,
                         capture_output=True, text=True).stdout
    import json
    return json.loads(out)["stats"]["peak_active"] if out else None


def main():
    if subprocess.run(["sh", "-c", "command -v gunicorn && /usr/bin/python3 -c 'import flask'"],
                      capture_output=True).returncode:
        print("appserver: skipped (needs gunicorn and python3-flask: make deps-integrations)")
        return
    base = tempfile.mkdtemp(prefix="dbpool-appbench-")
    ns = "appbench%d" % os.getpid()
    dirs = {}
    for kind, boot in (("plain", NO_DBPOOL), ("dbpool", recipe("dbpool_boot.py"))):
        d = os.path.join(base, kind)
        os.mkdir(d)
        for name, text in (("dbpool_boot.py", boot), ("app.py", recipe("flask_app.py")),
                           ("gunicorn.conf.py", recipe("gunicorn.conf.py")),
                           ("per_thread.py", PER_THREAD)):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        dirs[kind] = d
    db = os.path.join(base, "app.db")
    env = dict(os.environ, APP_DB=db, DBPOOL_EXTENSION=os.path.join(B, "dbpool.so"),
               DBPOOL_NAMESPACE=ns, DBPOOL_MAX_CONNECTIONS=str(CAP),
               WEB_WORKERS="4", WEB_THREADS="4")
    env.pop("DBPOOL_ACQUIRE_TIMEOUT_MS", None)

    def fresh():
        subprocess.run(["sqlite3", db, "PRAGMA journal_mode=WAL; DROP TABLE IF EXISTS hits; "
                        "CREATE TABLE hits(at TEXT)"], check=True, capture_output=True)
        subprocess.run([os.path.join(B, "dbpoolctl"), "rm", "--force", db], env=env,
                       capture_output=True)

    def run(kind, module="app", hup=False):
        fresh()
        p, sock = serve(dirs[kind], module, env)
        r = load(sock, SECONDS, p.pid if hup else None)
        p.send_signal(signal.SIGTERM)
        p.wait()
        r["peak"] = peak(db, env) if kind == "dbpool" else None
        return r

    try:
        results = {"plain": [], "dbpool": []}
        for _ in range(ROUNDS):
            for kind in ("plain", "dbpool"):
                results[kind].append(run(kind))
        print("gunicorn 4 workers x 4 threads, %d clients, %d s rounds, a connection per "
              "request; dbpool cap %d" % (CLIENTS, SECONDS, CAP))
        for kind in ("plain", "dbpool"):
            for r in results[kind]:
                print("  %-6s requests %5d  p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms  "
                      "statuses %s%s" % (kind, r["n"], r["p50"], r["p99"], r["max"],
                                         r["statuses"], "  peak_active %s" % r["peak"]
                                         if r["peak"] is not None else ""))
        med = lambda k, f: sorted(r[f] for r in results[k])[len(results[k]) // 2]  # noqa
        print("  dbpool/plain: p50 %.2fx  p99 %.2fx  max %.2fx  throughput %.2fx" % (
            med("dbpool", "p50") / med("plain", "p50"), med("dbpool", "p99") / med("plain", "p99"),
            med("dbpool", "max") / med("plain", "max"), med("dbpool", "n") / med("plain", "n")))
        for label, kind, module in (("a connection per request", "dbpool", "app"),
                                    ("connections kept per thread", "dbpool", "per_thread")):
            r = run(kind, module, hup=True)
            print("  HUP after %.1f s, %s: requests %d, statuses %s, p99 %.0f ms, max %.0f ms, "
                  "peak_active %s" % (SECONDS / 3, label, r["n"], r["statuses"], r["p99"],
                                      r["max"], r["peak"]))
    finally:
        subprocess.run(["rm", "-rf", base])
        for seg in os.listdir("/dev/shm"):
            if seg.startswith("dbpool.%s." % ns):
                os.unlink(os.path.join("/dev/shm", seg))


if __name__ == "__main__":
    main()
