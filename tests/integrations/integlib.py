"""Helpers of the integration tests: the recipes, read out of
docs/integrations.md (so that the docs show what is tested), a test case
with a database the recipes use (APP_DB, table hits) and DBPOOL_EXTENSION
set, and small clients (HTTP over a Unix socket, FastCGI)."""
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import (BUILD, DBPOOLCTL, EXT, ROOT, PoolTestCase,  # noqa: E402,F401
                            wait_until)

DOC = os.path.join(ROOT, "docs", "integrations.md")
RECIPE = re.compile(r"<!-- recipe: (\S+) -->\n```\w*\n(.*?)```", re.S)


def recipes():
    with open(DOC) as f:
        return {m.group(1): m.group(2) for m in RECIPE.finditer(f.read())}


def recipe(name):
    found = recipes()
    if name not in found:
        raise AssertionError("no recipe %r in docs/integrations.md" % name)
    return found[name]


def need(program, packages):
    """Skip unless program is on PATH, naming the Debian packages."""
    if not shutil.which(program):
        raise unittest.SkipTest("%s is not installed (apt-get install %s; "
                                "make deps-integrations)" % (program, packages))


def need_python_module(module, package):
    r = subprocess.run(["/usr/bin/python3", "-c", "import " + module], capture_output=True)
    if r.returncode != 0:
        raise unittest.SkipTest("Python module %s is not installed (apt-get install %s; "
                                "make deps-integrations)" % (module, package))


class IntegTestCase(PoolTestCase):
    """A database with table hits, recipes written into self.dir on demand,
    and the environment the recipes read."""
    max_connections = "4"

    def setUp(self):
        super().setUp()
        subprocess.run(["sqlite3", self.db, "PRAGMA journal_mode=WAL; "
                        "CREATE TABLE hits(at TEXT)"], check=True, capture_output=True)
        self.env.update(APP_DB=self.db, DBPOOL_EXTENSION=EXT + ".so",
                        PYTHONDONTWRITEBYTECODE="1")
        self.env.pop("LD_PRELOAD", None)

    def write(self, name, text=None, dest=None):
        """Write recipe name (or text) as self.dir/dest; returns the path."""
        path = os.path.join(self.dir, dest or name)
        with open(path, "w") as f:
            f.write(recipe(name) if text is None else text)
        return path

    def set_pool(self, **settings):
        r = self.ctl("set", self.db, *("%s=%s" % kv for kv in settings.items()))
        self.assertEqual(r.returncode, 0, r.stderr)

    def fill_pool(self, n=None, timeout_ms=None):
        """Hold n slots (all) with sqlite3 shells, then make the pool's
        acquire timeout timeout_ms if given; returns the shells."""
        n = n or int(self.max_connections)
        shells = [self.shell() for _ in range(n)]
        self.assertEqual(self.stats()[0], n)
        if timeout_ms is not None:
            self.set_pool(acquire_timeout_ms=timeout_ms)
        return shells

    def peak(self):
        return self.view.execute("SELECT peak_active FROM pool_stats WHERE database = ?",
                                 (self.db,)).fetchone()[0]

    def spawn(self, args, **kw):
        p = subprocess.Popen(args, cwd=self.dir, env=kw.pop("env", self.env),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
        self.procs.append(p)
        return p


def http_get(sock_path, path="/", method="GET", timeout=60):
    """One HTTP/1.0 request over a Unix socket: (status, headers, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall(("%s %s HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
               % (method, path)).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body.decode()


def wait_for_socket(path, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited (%s): %s" % (proc.returncode,
                                                              proc.stderr.read()))
        if os.path.exists(path):
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                s.close()
                return
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError("no server on %s after %d s" % (path, timeout))


def fastcgi_get(sock_path, script, env=None, timeout=60):
    """A FastCGI GET of script (a responder request, as a web server makes
    one): (status, headers, body)."""
    params = {"SCRIPT_FILENAME": script, "SCRIPT_NAME": "/" + os.path.basename(script),
              "REQUEST_METHOD": "GET", "REQUEST_URI": "/", "QUERY_STRING": "",
              "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1",
              "SERVER_NAME": "localhost", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1"}
    params.update(env or {})

    def record(kind, content):
        return struct.pack("!BBHHBx", 1, kind, 1, len(content), 0) + content

    def length(n):
        return struct.pack("!B", n) if n < 128 else struct.pack("!I", n | 0x80000000)

    body = b"".join(length(len(k)) + length(len(v)) + k.encode() + v.encode()
                    for k, v in ((k, str(v)) for k, v in params.items()))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall(record(1, struct.pack("!HB5x", 1, 0)) + record(4, body) + record(4, b"")
              + record(5, b""))
    out, buf = b"", b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 8:
            _, kind, _, n, pad = struct.unpack("!BBHHB", buf[:7])
            if len(buf) < 8 + n + pad:
                break
            if kind == 6:  # stdout
                out += buf[8:8 + n]
            buf = buf[8 + n + pad:]
            if kind == 3:  # end of request
                s.close()
                head, _, text = out.partition(b"\r\n\r\n")
                headers = dict(line.split(": ", 1) for line in
                               head.decode("latin-1").split("\r\n") if ": " in line)
                status = int(headers.get("Status", "200").split()[0])
                return status, headers, text.decode()
    s.close()
    raise AssertionError("FastCGI connection closed before the end of the request")
