"""writer_python.py -- what users of the extension get from Python: P
/usr/bin/python3 processes (isolation_level=None, explicit BEGIN IMMEDIATE;
INSERT; COMMIT, busy timeout 5 s) without the extension (busy_timeout alone)
and with it (writer queue on), measured in the same run.

Usage: /usr/bin/python3 bench/writer_python.py [quick]   (B= the build dir)
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

QUICK = len(sys.argv) > 1 and sys.argv[1] == "quick"
SECS = 3.0 if QUICK else 4.0
P = int(os.environ.get("WRITER_PY_P", "16"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXT = os.path.join(ROOT, os.environ.get("B", "build"), "dbpool")

WORKER = r"""
import json, sqlite3, sys, time
db, ext, start, secs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
if ext != "-":
    boot = sqlite3.connect(":memory:")
    boot.enable_load_extension(True)
    boot.load_extension(ext)
c = sqlite3.connect(db, timeout=5.0, isolation_level=None)
c.execute("PRAGMA synchronous=NORMAL")
payload = b"x" * 100
lat, errors, msg = [], 0, ""
while time.time() < start:
    time.sleep(0.001)
end = start + secs
while time.time() < end:
    t0 = time.perf_counter()
    try:
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO t(payload) VALUES (?)", (payload,))
        c.execute("COMMIT")
        lat.append(time.perf_counter() - t0)
    except sqlite3.Error as e:
        errors += 1
        msg = str(e)
        if c.in_transaction:
            c.execute("ROLLBACK")
print(json.dumps({"n": len(lat), "errors": errors, "msg": msg,
                  "max": max(lat) if lat else 0,
                  "lat": sorted(lat)[-max(1, len(lat) // 500):]}))
"""


def run(ext, tmp, tag):
    db = os.path.join(tmp, tag + ".db")
    c = sqlite3.connect(db)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB)")
    c.close()
    start = time.time() + 1.0 + 0.05 * P
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, db, ext, str(start), str(SECS)],
                              stdout=subprocess.PIPE, text=True) for _ in range(P)]
    res = [json.loads(p.communicate()[0]) for p in procs]
    counts = [r["n"] for r in res]
    total = sum(counts)
    # The slowest 0.2% of each process: enough for p99.9 over all.
    tail = sorted(x for r in res for x in r["lat"])
    k = max(0, len(tail) - max(1, total // 1000))
    p999 = tail[k] if tail else 0
    jain = total * total / (P * sum(x * x for x in counts)) if total else 0
    return {"tps": total / SECS, "errors": sum(r["errors"] for r in res),
            "msg": next((r["msg"] for r in res if r["msg"]), ""),
            "max": max(r["max"] for r in res), "p999": p999, "jain": jain,
            "min": min(counts), "maxn": max(counts)}


def main():
    tmp = tempfile.mkdtemp(prefix="dbpool-wpy-")
    os.environ["DBPOOL_NAMESPACE"] = "wpy%d" % os.getpid()
    os.environ["DBPOOL_MAX_CONNECTIONS"] = "256"
    try:
        print("Python: %d /usr/bin/python3 processes, BEGIN IMMEDIATE; INSERT; COMMIT, "
              "timeout=5.0, %.0f s per run" % (P, SECS))
        print("| who      |   tx/s | errors |  p99.9 ms |   max ms |  Jain | ops/process |")
        print("|----------|--------|--------|-----------|----------|-------|-------------|")
        base = run("-", tmp, "base")
        queue = run(EXT, tmp, "queue")
        for who, r in (("baseline", base), ("queue", queue)):
            print("| %-8s | %6.0f | %6d | %9.1f | %8.1f | %5.3f | %5d-%-5d |" % (
                who, r["tps"], r["errors"], r["p999"] * 1e3, r["max"] * 1e3, r["jain"],
                r["min"], r["maxn"]))
            if r["msg"]:
                print("|   first error: %s" % r["msg"])
        print("| ratio    | %5.2fx |        | %8.2fx | %7.3fx |       |             |" % (
            queue["tps"] / base["tps"] if base["tps"] else 0,
            queue["p999"] / base["p999"] if base["p999"] else 0,
            queue["max"] / base["max"] if base["max"] else 0))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for f in os.listdir("/dev/shm"):
            if f.startswith("dbpool." + os.environ["DBPOOL_NAMESPACE"] + "."):
                os.unlink(os.path.join("/dev/shm", f))


if __name__ == "__main__":
    main()
