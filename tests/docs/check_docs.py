"""The docs check (as pgbouncer checks that every option is documented):
every setting, SQL table column, function, pragma and dbpoolctl command that
the built code has appears in the docs; dbpoolctl's --help texts and the
docs agree; every error message in the source appears in the
troubleshooting table; the version agrees everywhere; and claims about
behaviour that were once wrong are tried on the built code (which
connections count, what a symlink does for a long path, what reclaims a
dead holder's slot)."""
import glob
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("B", "build"))
failures = []


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def squash(text):
    return re.sub(r"\s+", " ", text).strip()


readme = read("README.md")
sql_doc = read("docs/sql.md")
ctl_doc = read("docs/dbpoolctl.md")
ops_doc = read("docs/operations.md")
capi_doc = read("docs/c-api.md")
all_docs = readme + sql_doc + ctl_doc + ops_doc + capi_doc


def need(what, text, where, name):
    if text not in where:
        failures.append("%s %r is not documented in %s" % (what, text, name))


# --- SQL surface, from the built extension -------------------------------
os.environ["DBPOOL_NAMESPACE"] = "%sdocs%d" % (os.environ.get("DBPOOL_TEST_RUN", ""),
                                               os.getpid())
tmp = tempfile.mkdtemp()
db = os.path.join(tmp, "d.db")
open(db, "w").close()
view = sqlite3.connect(":memory:")
before = {r[0] for r in view.execute("SELECT name FROM pragma_function_list")}
view.enable_load_extension(True)
view.load_extension(os.path.join(BUILD, "dbpool"))
conn = sqlite3.connect(db)  # counted, and has pool_settings rows
functions = {r[0] for r in view.execute("SELECT name FROM pragma_function_list")} - before
settings = [r[0] for r in conn.execute("SELECT name FROM pool_settings")]
for fn in sorted(functions):
    for doc, name in ((readme, "README.md"), (sql_doc, "docs/sql.md")):
        need("function", fn + "(", doc, name)
for table in ("pool_stats", "pool_connections", "pool_settings"):
    for doc, name in ((readme, "README.md"), (sql_doc, "docs/sql.md")):
        need("table", table, doc, name)
    for (col,) in view.execute("SELECT name FROM pragma_table_info(?)", (table,)):
        for doc, name in ((readme, "README.md"), (sql_doc, "docs/sql.md")):
            need("column %s." % table, "`%s`" % col, doc, name)
for s in settings:
    for doc, name in ((readme, "README.md"), (sql_doc, "docs/sql.md"), (ctl_doc, "docs/dbpoolctl.md")):
        need("setting", s, doc, name)
    need("pragma", "dbpool_" + s, readme, "README.md")
    need("pragma", "dbpool_" + s, sql_doc, "docs/sql.md")
need("pragma", "PRAGMA dbpool_stats", readme, "README.md")
need("pragma", "PRAGMA dbpool_stats", sql_doc, "docs/sql.md")
need("URI parameter", "dbpool_timeout=", sql_doc, "docs/sql.md")
conn.close()
view.close()
for seg in glob.glob("/dev/shm/dbpool.%s.*" % os.environ["DBPOOL_NAMESPACE"]):
    os.unlink(seg)
subprocess.run(["rm", "-rf", tmp])

# --- behaviour the docs describe, tried ---------------------------------------
ctl = os.path.join(BUILD, "dbpoolctl")
ext = os.path.join(BUILD, "dbpool")
tmp = tempfile.mkdtemp()
db = os.path.join(tmp, "claims.db")
open(db, "w").close()
sql_flat, ops_flat_text = squash(sql_doc), squash(ops_doc)


def claim(ok, text, where, name, why):
    """The docs say text (in name); ok says whether the code agrees."""
    if squash(text) not in where:
        failures.append("%s no longer says %r (%s)" % (name, text, why))
    elif not ok:
        failures.append("%s says %r, but the built code disagrees (%s)" % (name, text, why))


# Which connections count: the loading one and later ones, not earlier ones.
r = subprocess.run(["/usr/bin/python3", "-c",
                    "import sqlite3, sys\n"
                    "before = sqlite3.connect(sys.argv[2])\n"
                    "loader = sqlite3.connect(sys.argv[2])\n"
                    "loader.enable_load_extension(True)\n"
                    "loader.load_extension(sys.argv[1])\n"
                    "after = sqlite3.connect(sys.argv[2])\n"
                    "print(loader.execute('SELECT active FROM pool_stats WHERE database = ?',"
                    " (sys.argv[2],)).fetchone()[0])\n", ext, db],
                   capture_output=True, text=True, timeout=60)
claim(r.stdout.strip() == "2", "Connections opened before loading are not counted, except "
      "the loading connection itself", sql_flat, "docs/sql.md",
      "a connection opened before, the loading one and one after: %r %r"
      % (r.stdout.strip(), r.stderr.strip()))

# A path over 1023 bytes: the path is resolved, so a symlink does not help.
deep = tmp
while len(deep) < 1100:
    deep = os.path.join(deep, "d" * 100)
os.makedirs(deep)
open(os.path.join(deep, "long.db"), "w").close()
os.symlink(deep, os.path.join(tmp, "short"))
r = subprocess.run([ctl, "set", os.path.join(tmp, "short", "long.db"), "max_connections=2"],
                   capture_output=True, text=True, timeout=60)
claim(r.returncode == 1 and "is longer than 1023 bytes" in r.stderr,
      "a symlink does not help, it is resolved", ops_flat_text, "docs/operations.md",
      "dbpoolctl set through a short symlink: %d %r" % (r.returncode, r.stderr.strip()))
if "a symlink works" in ops_doc:
    failures.append("docs/operations.md still says 'a symlink works' for long paths")

# A dead holder: never shown; its slot comes back as soon as someone who may
# write the pool looks (dbpoolctl status does when it can), and counts as
# reclaimed from the moment of death for a reader who cannot reclaim.
holder = subprocess.Popen(["/usr/bin/python3", "-c",
                           "import sqlite3, sys\n"
                           "boot = sqlite3.connect(':memory:')\n"
                           "boot.enable_load_extension(True)\n"
                           "boot.load_extension(sys.argv[1])\n"
                           "c = sqlite3.connect(sys.argv[2])\n"
                           "print('in', flush=True)\n"
                           "sys.stdin.read()\n", ext, db],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
holder.stdout.readline()
holder.send_signal(signal.SIGKILL)
holder.wait()
holder.stdin.close()
holder.stdout.close()
out = subprocess.run([ctl, "status", db, "--json"], capture_output=True, text=True).stdout
m = re.search(r'"active": (\d+).*"total_reclaimed": (\d+)', out, re.S)
conns = re.search(r'"connections": \[(.*?)\]', out, re.S)
reap = subprocess.run([ctl, "reap", db], capture_output=True, text=True, timeout=60).stdout
claim(m is not None and m.group(1) == "0" and m.group(2) == "1" and conns is not None
      and not conns.group(1).strip() and reap.startswith("reclaimed 0 slots"),
      "A dead process's holders are never shown", squash(ops_doc.replace("`", "")),
      "docs/operations.md",
      "dbpoolctl status after a SIGKILL: %r; reap then said %r" % (out, reap))
subprocess.run([ctl, "rm", "--force", db], capture_output=True)
subprocess.run(["rm", "-rf", tmp])

# --- dbpoolctl: commands, usage lines and help texts -------------------------
overview = subprocess.run([ctl, "--help"], capture_output=True, text=True).stdout
commands = re.findall(r"^  dbpoolctl (\w+)", overview, re.M)
if len(commands) < 9:
    failures.append("dbpoolctl --help lists only %s" % commands)
for cmd in commands:
    help_text = subprocess.run([ctl, cmd, "--help"], capture_output=True, text=True).stdout
    usage = help_text.splitlines()[0][len("usage: "):]
    body = squash(help_text.split("\n\n", 1)[1])
    for doc, name in ((readme, "README.md"), (ctl_doc, "docs/dbpoolctl.md"),
                      (read("docs/man/dbpoolctl.1"), "docs/man/dbpoolctl.1")):
        need("dbpoolctl command", "dbpoolctl " + cmd if name != "docs/man/dbpoolctl.1" else cmd,
             doc, name)
    need("usage line", usage, readme + ctl_doc, "README.md or docs/dbpoolctl.md")
    if body not in squash(ctl_doc.replace("**", "").replace(": ", " ")) and \
            body not in squash(re.sub(r"\n: ", " ", ctl_doc)):
        failures.append("the --help text of %r differs from docs/dbpoolctl.md:\n  %s" % (cmd, body))
for opt in re.findall(r"(--[a-z]+)", overview + " --json --force --interval --count"):
    need("dbpoolctl option", opt, ctl_doc, "docs/dbpoolctl.md")

# --- every error message of the source, in the troubleshooting table ----------
ops_flat = squash(ops_doc.replace("`", ""))
literal = re.compile(r'"((?:[^"\\]|\\.)*)"')
spec = re.compile(r"%[-+ #0-9.]*(?:ll|l|z|h)?[diuxXoscpfgz%]")
for path in sorted(glob.glob(os.path.join(ROOT, "coordinator/*.c")) +
                   glob.glob(os.path.join(ROOT, "pool/*.c")) +
                   glob.glob(os.path.join(ROOT, "ext/*.c")) +
                   glob.glob(os.path.join(ROOT, "preload/*.c")) +
                   glob.glob(os.path.join(ROOT, "cli/*.c"))):
    src = open(path).read()
    # adjacent literals concatenate
    for m in re.finditer(r'"(?:dbpool: |dbpool_label: )(?:[^"\\]|\\.)*"(?:\s*"(?:[^"\\]|\\.)*")*', src):
        msg = "".join(literal.findall(m.group(0)))
        msg = re.sub(r"^dbpool(_label)?: ", lambda x: "dbpool_label: " if x.group(1) else "", msg)
        for frag in spec.split(msg.replace('\\"', '"')):
            frag = frag.strip(" :'(),=.")
            if len(frag) >= 6 and squash(frag) not in ops_flat:
                failures.append("%s: message fragment %r is not in docs/operations.md"
                                % (os.path.relpath(path, ROOT), frag))

# --- every recipe of docs/integrations.md is run by a test ---------------------
integ = read("docs/integrations.md")
tests_text = "".join(open(p).read() for p in glob.glob(os.path.join(ROOT, "tests/integrations/*.py")))
for name in re.findall(r"<!-- recipe: (\S+) -->", integ):
    if '"%s"' % name not in tests_text:
        failures.append("recipe %s of docs/integrations.md is run by no test in "
                        "tests/integrations" % name)
if "docs/integrations.md" not in readme:
    failures.append("README.md does not point to docs/integrations.md")

# --- one version everywhere --------------------------------------------------
version = read("VERSION").strip()
changelog = read("debian/changelog").split("\n", 1)[0]
if not changelog.startswith("dbpool (%s) " % version):
    failures.append("debian/changelog's first entry (%s) is not version %s" % (changelog, version))
if subprocess.run([ctl, "--version"], capture_output=True, text=True).stdout.strip() != \
        "dbpoolctl " + version:
    failures.append("dbpoolctl --version disagrees with VERSION")
for man in glob.glob(os.path.join(ROOT, "docs/man/*.[0-9]")):
    if '"dbpool %s"' % version not in open(man).read():
        failures.append("%s does not say dbpool %s" % (os.path.relpath(man, ROOT), version))
soname = subprocess.run(["readelf", "-d", os.path.join(BUILD, "libdbpool.so")],
                        capture_output=True, text=True).stdout
if "[libdbpool.so.%s]" % version.split(".")[0] not in soname:
    failures.append("libdbpool.so's soname does not follow VERSION")

# --- the C API: every exported symbol documented; the headers' version -------
symbols = re.findall(r"^\s+(dbpool_\w+);", read("libdbpool.map"), re.M)
if len(symbols) < 40:
    failures.append("libdbpool.map lists only %d symbols" % len(symbols))
for sym in symbols:
    need("exported function", "`%s(" % sym, capi_doc.replace("`dbpool_coord_get/set(", "`dbpool_coord_get(`dbpool_coord_set("), "docs/c-api.md")
vh = read("include/dbpool_version.h")
major, minor, patch = (int(x) for x in version.split("."))
if '#define DBPOOL_VERSION "%s"' % version not in vh or \
        "#define DBPOOL_VERSION_NUMBER %d\n" % (major * 1000000 + minor * 1000 + patch) not in vh:
    failures.append("include/dbpool_version.h disagrees with VERSION %s (make version-header)" % version)

for f in failures:
    print("docs:", f)
print("ok   docs check" if not failures else "FAIL docs check (%d)" % len(failures))
sys.exit(1 if failures else 0)
