"""dbpoolctl, the real binary, against pools held by real processes (sqlite3
shells with the extension): every command's output, JSON checked field by
field, Prometheus output checked against the exposition format, watch under
a pseudo-terminal (tmux), exit statuses."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import DBPOOLCTL, EXT, ROOT, PoolTestCase, wait_until  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prometheus(text):
    """A checker of the text exposition format (0.0.4), as far as we use
    it: returns {family: {"type": t, "samples": [(name, labels, value)]}}."""
    families, current = {}, None
    assert text.endswith("\n"), "exposition must end with a newline"
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in families, "family %s declared twice" % name
            families[name] = {"type": None, "samples": [], "help": line.split(" ", 3)[3]}
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert name == current, "TYPE %s without HELP first" % name
            assert typ in ("gauge", "counter", "histogram"), typ
            families[name]["type"] = typ
        else:
            m = SAMPLE.match(line)
            assert m, "not a sample line: %r" % line
            name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
            labels, pos = {}, 0
            while pos < len(labels_text):
                lm = LABEL.match(labels_text, pos)
                assert lm, "bad labels: %r" % labels_text
                labels[lm.group(1)] = re.sub(r'\\(.)', lambda e: {"n": "\n"}.get(
                    e.group(1), e.group(1)), lm.group(2))
                pos = lm.end()
            base = current
            assert name == base or (families[base]["type"] == "histogram" and name in (
                base + "_bucket", base + "_sum", base + "_count")), \
                "sample %s outside its family %s" % (name, base)
            v = float("inf") if value == "+Inf" else float(value)
            families[base]["samples"].append((name, labels, v))
    for name, fam in families.items():
        if fam["type"] == "counter":
            assert name.endswith("_total"), "counter %s must end in _total" % name
    return families


class DbpoolctlTest(PoolTestCase):
    max_connections = "4"

    def test_version_and_help(self):
        version = open(os.path.join(ROOT, "VERSION")).read().strip()
        r = self.ctl("--version")
        self.assertEqual((r.returncode, r.stdout), (0, "dbpoolctl %s\n" % version))
        r = self.ctl("--help")
        self.assertEqual(r.returncode, 0)
        for cmd in ("list", "status", "watch", "set", "pause", "resume", "reap", "rm",
                    "metrics"):
            self.assertIn("dbpoolctl %s" % cmd, r.stdout)
            h = self.ctl(cmd, "--help")
            self.assertEqual(h.returncode, 0, cmd)
            self.assertTrue(h.stdout.startswith("usage: dbpoolctl %s" % cmd), h.stdout)

    def test_usage_errors_exit_2(self):
        for args, message in [
                ((), "usage: dbpoolctl"),
                (("frobnicate",), "unknown command 'frobnicate'"),
                (("status",), "status: missing argument"),
                (("list", "--force"), "--force is not an option of list"),
                (("watch", self.db, "--interval", "fast"), "--interval needs an integer"),
                (("set", self.db, "max_connections"), "'max_connections' is not NAME=VALUE"),
                (("status", self.db, "extra"), "unexpected argument 'extra'")]:
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(message, r.stderr, args)

    def test_list_text_and_json(self):
        r = self.ctl("list")
        self.assertEqual((r.returncode, r.stdout), (0, "no pools\n"))
        a = self.shell()
        self.shell()
        r = self.ctl("list")
        self.assertEqual(r.returncode, 0)
        header, row = r.stdout.splitlines()
        self.assertEqual(header.split(), ["DATABASE", "ACTIVE/MAX", "IDLE", "WAITING",
                                          "PROCESSES", "PAUSED", "RECORDS", "FILE"])
        self.assertEqual(row.split(), [self.db, "2/4", "0", "0", "2", "no", "2", "ok"])
        pools = json.loads(self.ctl("list", "--json").stdout)
        self.assertEqual(len(pools), 1)
        p = pools[0]
        self.assertEqual(p["database"], self.db)
        self.assertTrue(p["segment"].startswith("/dbpool.%s." % self.ns))
        self.assertEqual((p["max_connections"], p["active"], p["idle"], p["waiting"],
                          p["processes"], p["paused"], p["records_in_use"], p["records_max"],
                          p["file"]), (4, 2, 0, 0, 2, False, 2, 8191, "ok"))
        self.close_shell(a)

    def test_status_json_field_by_field(self):
        a = self.shell(label="nightly-report")
        b = self.shell()
        # a waiter: limit 2, a third process waits
        self.assertEqual(self.ctl("set", self.db, "max_connections=2").returncode, 0)
        w = self.python("c = sqlite3.connect(DB)\nprint('in')\n")
        wait_until(lambda: self.stats()[1] == 1, what="a waiter")
        r = self.ctl("status", self.db, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["database"], self.db)
        st = doc["stats"]
        expected_keys = {"max_connections", "active", "idle", "waiting", "peak_active",
                         "processes", "total_acquired", "total_released",
                         "total_timeouts", "total_reclaimed", "avg_wait_ms", "p50_wait_ms",
                         "p95_wait_ms", "p99_wait_ms", "max_wait_ms", "utilization",
                         "paused", "acquire_timeout_ms", "created_at", "records_in_use",
                         "records_max", "writer_queue",
                         "writer_starvation_ms", "writers_waiting", "total_writes",
                         "total_write_waits", "write_wait_p50_ms", "write_wait_p99_ms",
                         "write_wait_p999_ms", "write_wait_max_ms", "writer_turns_skipped",
                         "writer_turns_expired"}
        self.assertEqual(set(st), expected_keys)
        self.assertEqual((st["writer_queue"], st["writer_starvation_ms"]), ("on", 20))
        self.assertEqual((st["max_connections"], st["active"], st["waiting"], st["idle"],
                          st["paused"], st["acquire_timeout_ms"]), (2, 2, 1, 0, 0, 5000))
        self.assertEqual(st["utilization"], 1.0)
        self.assertEqual(st["processes"], 3)
        self.assertEqual(st["total_acquired"], 2)
        self.assertEqual((st["records_in_use"], st["records_max"]), (3, 8191))  # the waiter too
        self.assertRegex(st["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        conns = doc["connections"]
        self.assertEqual([c["state"] for c in conns], ["active", "active", "waiting"])
        self.assertEqual({c["pid"] for c in conns[:2]}, {a.pid, b.pid})
        self.assertEqual(conns[2]["pid"], w.pid)
        by_pid = {c["pid"]: c for c in conns}
        self.assertEqual(by_pid[a.pid]["label"], "nightly-report")
        self.assertEqual({c["process_state"] for c in conns}, {"running"})
        self.assertEqual(doc["file"], "ok")
        self.assertIsNone(by_pid[b.pid]["label"])
        self.assertEqual(by_pid[a.pid]["process"], "sqlite3")
        self.assertEqual(by_pid[a.pid]["thread"], a.pid)
        # The shells loaded dbpool on their connection; the Python process
        # loaded it on an in-memory one and was counted when it connected.
        self.assertEqual([by_pid[p]["joined"] for p in (a.pid, b.pid, w.pid)],
                         ["load", "load", "auto"])
        self.assertEqual(set(conns[0]), {"pid", "process", "process_state", "thread", "state",
                                         "since", "duration_ms", "joined", "writer",
                                         "label"})
        self.assertEqual({c["writer"] for c in conns}, {None})  # nobody writes
        for c in conns:
            self.assertGreaterEqual(c["duration_ms"], 0)
            self.assertRegex(c["since"], r"Z$")
        text = self.ctl("status", self.db).stdout
        self.assertIn("max_connections     2", text)
        self.assertIn("records_in_use      3 of 8191", text)
        self.assertRegex(text, r"\n%d +sqlite3 +running .* load +nightly-report\n" % a.pid)
        self.close_shell(a)
        self.assertEqual(w.communicate(timeout=30)[0].strip(), "in")

    def test_set_is_visible_to_a_holder_and_invalid_changes_nothing(self):
        s = self.shell()
        r = self.ctl("set", self.db, "max_connections=7", "acquire_timeout_ms=1500")
        self.assertEqual((r.returncode, r.stdout),
                         (0, "max_connections=7\nacquire_timeout_ms=1500\n"))
        s.stdin.write("SELECT 'seen', value FROM pool_settings WHERE name = 'max_connections';\n"
                      ".quit\n")
        s.stdin.flush()
        out, _ = s.communicate(timeout=10)
        self.assertIn("seen|7", out)
        for args, message in [
                (("max_connections=3", "acquire_timeout_ms=-1"),
                 "acquire_timeout_ms=-1 is out of range (0..86400000)"),
                (("max_connections=0",), "max_connections=0 is out of range (1..4096)"),
                (("paused=maybe",), "invalid value 'maybe' for paused"),
                (("max_conns=3",), "unknown setting 'max_conns'")]:
            r = self.ctl("set", self.db, *args)
            self.assertEqual(r.returncode, 1, args)
            self.assertIn(message, r.stderr)
        self.assertEqual(self.stats()[2], 7)  # nothing changed, not even the valid part

    def test_set_values_follow_one_rule_and_need_no_environment(self):
        r = self.ctl("set", self.db, "max_connections= 5", "acquire_timeout_ms=1500.0 ")
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, "max_connections=5\nacquire_timeout_ms=1500\n", ""))
        r = self.ctl("set", self.db, "max_connections=3.5")
        self.assertEqual(r.returncode, 1)
        self.assertIn("invalid value '3.5' for max_connections: expected an integer "
                      "from 1 to 4096", r.stderr)
        self.assertEqual(self.stats()[2], 5)
        self.assertEqual(self.ctl("rm", self.db).returncode, 0)
        # An explicit value does not need (nor read) its variable, even to
        # create the pool; the other setting's variable is still checked.
        env = dict(self.env, DBPOOL_MAX_CONNECTIONS="lots")
        r = subprocess.run([DBPOOLCTL, "set", self.db, "max_connections=5"],
                           capture_output=True, text=True, env=env, timeout=30)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "max_connections=5\n", ""))
        self.assertEqual(self.stats()[2], 5)
        self.assertEqual(self.ctl("rm", self.db).returncode, 0)
        env["DBPOOL_ACQUIRE_TIMEOUT_MS"] = "soon"
        r = subprocess.run([DBPOOLCTL, "set", self.db, "max_connections=5"],
                           capture_output=True, text=True, env=env, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("environment variable DBPOOL_ACQUIRE_TIMEOUT_MS='soon' is invalid: "
                      "expected an integer from 0 to 86400000", r.stderr)
        self.assertIsNone(self.stats())
        # ... and a variable's value follows the same rule.
        env = dict(self.env, DBPOOL_MAX_CONNECTIONS=" 6 ", DBPOOL_ACQUIRE_TIMEOUT_MS="700.0")
        r = subprocess.run([DBPOOLCTL, "set", self.db, "paused=off"],
                           capture_output=True, text=True, env=env, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.stats()[2], 6)
        self.assertEqual(self.view.execute(
            "SELECT acquire_timeout_ms FROM pool_stats WHERE database = ?",
            (self.db,)).fetchone()[0], 700)

    def test_pause_and_resume(self):
        self.shell()
        self.assertEqual(self.ctl("pause", self.db).stdout,
                         "paused the pool of %s\n" % self.db)
        p = self.python("c = sqlite3.connect('file:' + DB + '?dbpool_timeout=20000', uri=True)\n"
                        "print('in')\n")
        wait_until(lambda: self.stats()[1] == 1, what="a waiter while paused")
        time.sleep(0.1)
        self.assertIsNone(p.poll())
        # A paused pool's timeout says so (one slot of four is in use).
        _, message = self.try_connect("dbpool_timeout=200")
        self.assertRegex(message, r"^automatic extension loading failed: dbpool: pool full: the pool "
                         r"of %s is paused \(1 of 4 connections in use; waited (\d+) ms\)$"
                         % re.escape(self.db))
        self.assertGreaterEqual(int(re.search(r"waited (\d+) ms", message).group(1)), 200)
        self.assertEqual(self.ctl("resume", self.db).returncode, 0)
        self.assertEqual(p.communicate(timeout=30)[0].strip(), "in")

    def test_reap_after_sigkill(self):
        s = self.shell()
        self.shell()
        s.send_signal(signal.SIGKILL)
        s.wait()
        r = self.ctl("reap", self.db)
        self.assertEqual((r.returncode, r.stdout),
                         (0, "reclaimed 1 slot of dead processes from the pool of %s\n"
                          % self.db))
        self.assertEqual(self.stats()[0], 1)
        self.assertEqual(self.stats()[3], 1)
        r = self.ctl("reap", self.db)
        self.assertIn("reclaimed 0 slots", r.stdout)

    def test_rm_refuses_while_holders_live(self):
        s = self.shell()
        r = self.ctl("rm", self.db)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is in use by 1 live process (pid %d)" % s.pid, r.stderr)
        self.assertIn("--force removes it anyway", r.stderr)
        self.assertIsNotNone(self.stats())
        self.close_shell(s)
        r = self.ctl("rm", self.db)
        self.assertEqual((r.returncode, r.stdout), (0, "removed the pool of %s\n" % self.db))
        self.assertIsNone(self.stats())
        r = self.ctl("rm", self.db)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no pool for %s" % self.db, r.stderr)

    def test_rm_force_while_a_holder_lives(self):
        self.shell()
        r = self.ctl("rm", self.db, "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(self.stats())

    def test_unknown_database_and_missing_pool(self):
        r = self.ctl("status", os.path.join(self.dir, "nope.db"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("database file %s/nope.db does not exist" % self.dir, r.stderr)
        r = self.ctl("pause", self.db)  # the file exists, no pool yet
        self.assertEqual(r.returncode, 1)
        self.assertIn("no pool for %s" % self.db, r.stderr)

    def test_metrics_follow_the_exposition_format(self):
        self.shell(label='a "quoted" label')
        s = self.shell()
        self.assertEqual(self.ctl("set", self.db, "max_connections=2").returncode, 0)
        w = self.python("c = sqlite3.connect(DB)\nprint('in')\n")
        wait_until(lambda: self.stats()[1] == 1, what="a waiter")
        time.sleep(0.05)
        self.close_shell(s)
        self.assertEqual(w.communicate(timeout=30)[0].strip(), "in")
        r = self.ctl("metrics")
        self.assertEqual(r.returncode, 0, r.stderr)
        fams = parse_prometheus(r.stdout)
        def value(name):
            [(n, labels, v)] = [x for x in fams[name]["samples"] if x[1]["database"] == self.db]
            return v
        self.assertEqual(fams["dbpool_max_connections"]["type"], "gauge")
        self.assertEqual(value("dbpool_max_connections"), 2)
        self.assertEqual(value("dbpool_active_connections"), 1)
        self.assertEqual(value("dbpool_acquired_total"), 3)
        self.assertEqual(value("dbpool_released_total"), 2)
        self.assertEqual(value("dbpool_records_in_use"), 1)
        self.assertEqual(value("dbpool_records_max"), 8191)
        self.assertEqual(fams["dbpool_acquired_total"]["type"], "counter")
        hist = fams["dbpool_wait_seconds"]
        self.assertEqual(hist["type"], "histogram")
        buckets = [(float(l["le"]), v) for n, l, v in hist["samples"]
                   if n.endswith("_bucket") and l["database"] == self.db]
        les = [le for le, _ in buckets]
        self.assertEqual(les, sorted(les))
        self.assertEqual(les[-1], float("inf"))
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts), "buckets must be cumulative")
        count = [v for n, l, v in hist["samples"] if n.endswith("_count")][0]
        total = [v for n, l, v in hist["samples"] if n.endswith("_sum")][0]
        self.assertEqual(counts[-1], count)
        self.assertEqual(count, 3)
        self.assertGreater(total, 0)  # the waiter waited
        self.assertLess(counts[0], count)  # ... so not every acquire is in the first bucket
        one = self.ctl("metrics", self.db)
        self.assertEqual(one.returncode, 0)
        parse_prometheus(one.stdout)

    def test_output_stays_valid_utf8_with_any_bytes(self):
        # A path with a Latin-1 byte and a newline, a label that is not
        # UTF-8: JSON and Prometheus replace invalid bytes with U+FFFD, text
        # shows them (and control characters) as \xHH, one line per row.
        odd = os.path.join(os.fsencode(self.dir), b"caf\xe9\nx.db")
        open(odd, "wb").close()
        holder = subprocess.Popen(
            ["/usr/bin/python3", "-c",
             "import os, sqlite3, sys\n"
             "boot = sqlite3.connect(':memory:')\n"
             "boot.enable_load_extension(True)\n"
             "boot.load_extension(sys.argv[1])\n"
             "c = sqlite3.connect(os.fsencode(sys.argv[2]))\n"
             "c.execute(\"SELECT dbpool_label(CAST(x'41ff42' AS TEXT))\")\n"
             "print('in', flush=True)\n"
             "sys.stdin.read()\n", EXT, os.fsdecode(odd)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env)
        self.procs.append(holder)
        self.assertEqual(holder.stdout.readline(), b"in\n")
        shown_json = os.fsdecode(odd).encode("utf-8", "surrogateescape").decode(
            "utf-8", "replace")  # what JSON and Prometheus show: \xe9 -> U+FFFD
        shown_text = self.dir + "/caf\\xE9\\nx.db"

        def run(*args):
            r = subprocess.run([DBPOOLCTL] + list(args), capture_output=True,
                               env=self.env, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.decode("utf-8")  # strict: fails on invalid UTF-8

        pools = json.loads(run("list", "--json"))
        self.assertEqual([p["database"] for p in pools], [shown_json])
        status = json.loads(run("status", odd, "--json"))
        self.assertEqual(status["database"], shown_json)
        self.assertEqual([c["label"] for c in status["connections"]], ["A\ufffdB"])
        fams = parse_prometheus(run("metrics"))
        self.assertEqual([s[1]["database"] for s in fams["dbpool_active_connections"]["samples"]],
                         [shown_json])
        parse_prometheus(run("metrics", odd))
        lines = run("list").splitlines()
        self.assertEqual(len(lines), 2, lines)  # the header and one row
        self.assertEqual(lines[1].split()[:2], [shown_text, "1/4"])
        text = run("status", odd)
        self.assertIn("pool of %s\n" % shown_text, text)
        [row] = [line for line in text.splitlines() if line.startswith(str(holder.pid))]
        self.assertEqual(row.split()[-1], "A\\xFFB")
        watch = run("watch", odd, "--interval", "10", "--count", "2").splitlines()
        self.assertEqual(len(watch), 2, watch)
        self.assertIn(" %s active=1/4" % shown_text, watch[0])
        self.assertEqual(run("pause", odd), "paused the pool of %s\n" % shown_text)

    def test_watch_plain_lines_when_not_a_terminal(self):
        self.shell()
        r = self.ctl("watch", self.db, "--interval", "50", "--count", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 3)
        for line in lines:
            self.assertIn("%s active=1/4 idle=0 waiting=0" % self.db, line)

    @unittest.skipUnless(shutil.which("tmux"), "tmux is not installed")
    def test_watch_redraws_under_a_terminal_and_quits_cleanly(self):
        s = self.shell(label="watched")
        session = "dbpoolctl-%s" % self.ns
        done = os.path.join(self.dir, "watch.status")
        cmd = "%s watch %s --interval 100; echo $? > %s" % (DBPOOLCTL, self.db, done)
        env = dict(self.env)
        env.pop("TMUX", None)
        tmux = ["tmux", "-L", session]
        subprocess.run(tmux + ["new-session", "-d", "-x", "160", "-y", "30", "-s", session,
                               "env", "DBPOOL_NAMESPACE=" + self.ns, "sh", "-c", cmd],
                       check=True, env=env)
        try:
            def screen():
                return subprocess.run(tmux + ["capture-pane", "-p", "-t", session],
                                      capture_output=True, text=True, env=env).stdout
            first = wait_until(lambda: "utilization [" in screen() and screen(), what="a frame")
            self.assertIn("active 1/4", first)
            self.assertIn(str(s.pid), first)
            self.assertIn("watched", first)
            # Another holder arrives: a later frame shows it (redrawn in place).
            t = self.shell()
            later = wait_until(lambda: "active 2/4" in screen() and screen(), what="a redraw")
            self.assertIn(str(t.pid), later)
            self.assertEqual(later.count("utilization ["), 1)
            subprocess.run(tmux + ["send-keys", "-t", session, "q"], check=True, env=env)
            status = wait_until(lambda: os.path.exists(done) and open(done).read().strip(),
                                what="watch to quit")
            self.assertEqual(status, "0")
            # Back on the main screen: the frame is gone, the cursor shown.
            self.assertNotIn("utilization [", screen())
        finally:
            subprocess.run(tmux + ["kill-server"], capture_output=True, env=env)


if __name__ == "__main__":
    unittest.main(verbosity=2)
