"""dbpoolctl's output stays valid UTF-8, one record per line, whatever bytes
a database path, a process name or a label holds (cli/format.c): every
kind of malformed UTF-8 (stray continuation bytes, bytes that never start a
sequence, overlong forms, surrogates, code points past U+10FFFF, sequences
cut short), the boundaries that are valid, and every character JSON, the
Prometheus exposition format and the text tables must escape. The bytes
come from real processes: labels set through dbpool_label(), a process name
written to /proc/self/comm, a database file whose name holds them."""
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dbpool_testlib import DBPOOLCTL, EXT, PoolTestCase  # noqa: E402
from test_dbpoolctl import parse_prometheus  # noqa: E402

R = "\ufffd"  # what JSON and Prometheus show for each byte that is not UTF-8

# (label bytes, as JSON gives it back, as the text table shows it)
LABELS = [
    # valid sequences of every length pass unchanged, U+00A0 is printable
    (b"v \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0|",
     "v \u00e9 \u20ac \U0001f600 \u00a0|", "v \u00e9 \u20ac \U0001f600 \u00a0|"),
    # the first and last code points of the checked ranges are valid
    (b"b \xe0\xa0\x80 \xed\x9f\xbf \xf0\x90\x80\x80 \xf4\x8f\xbf\xbf",
     "b \u0800 \ud7ff \U00010000 \U0010ffff", "b \u0800 \ud7ff \U00010000 \U0010ffff"),
    # a stray continuation byte, C0/C1 (always overlong), F5 and FE leads
    (b"i \x80 \xc0\xaf \xc1\xbf \xf5\x80 \xfe",
     "i %s %s %s %s %s" % (R, R * 2, R * 2, R * 2, R),
     "i \\x80 \\xC0\\xAF \\xC1\\xBF \\xF5\\x80 \\xFE"),
    # overlong 3- and 4-byte forms, a surrogate, a code point past U+10FFFF
    (b"o \xe0\x80\x80 \xed\xa0\x80 \xf0\x80\x80\x80 \xf4\x90\x80\x80",
     "o %s %s %s %s" % (R * 3, R * 3, R * 4, R * 4),
     "o \\xE0\\x80\\x80 \\xED\\xA0\\x80 \\xF0\\x80\\x80\\x80 \\xF4\\x90\\x80\\x80"),
    # sequences broken by an ASCII byte, and one cut short by the end
    (b"c \xe2\x82A \xc3B \xf0\x9f\x98",
     "c %sA %sB %s" % (R * 2, R, R * 3), "c \\xE2\\x82A \\xC3B \\xF0\\x9F\\x98"),
    # what each format escapes: quote, backslash, newline, CR, tab, other
    # C0 controls, DEL and C1 controls (text only: JSON allows them raw)
    (b'q"b\\s\nn\rr\tt\x01u\x1fv\x7fw\xc2\x85x',
     'q"b\\s\nn\rr\tt\x01u\x1fv\x7fw\x85x',
     'q"b\\\\s\\nn\\rr\\tt\\x01u\\x1Fv\\x7Fw\\xC2\\x85x'),
]

# a process name (15 bytes at most) and its three renderings
COMM = b'p\xff"\\\x01\x7f\xc2\x85q\tz'
COMM_JSON = 'p%s"\\\x01\x7f\x85q\tz' % R
COMM_TEXT = 'p\\xFF"\\\\\\x01\\x7F\\xC2\\x85q\\tz'

# a database file name: quote, backslash, newline, DEL, C1, invalid bytes
NAME = b'd"b\\n\nl\x7fc\xc2\x9fi\xff\xc3\xa9\xe2\x82.db'
NAME_JSON = 'd"b\\n\nl\x7fc\x9fi%s\u00e9%s.db' % (R, R * 2)
NAME_TEXT = 'd"b\\\\n\\nl\\x7Fc\\xC2\\x9Fi\\xFF\u00e9\\xE2\\x82.db'


class OutputStaysValidUtf8WithHostileBytes(PoolTestCase):
    max_connections = "16"

    def setUp(self):
        super().setUp()
        self.odd = os.path.join(os.fsencode(self.dir), NAME)
        open(self.odd, "wb").close()
        code = ("import os, sqlite3, sys\n"
                "open('/proc/self/comm', 'wb').write(bytes.fromhex(sys.argv[3]))\n"
                "boot = sqlite3.connect(':memory:')\n"
                "boot.enable_load_extension(True)\n"
                "boot.load_extension(sys.argv[1])\n"
                "held = []\n"
                "for h in sys.argv[4:]:\n"
                "    c = sqlite3.connect(os.fsencode(sys.argv[2]))\n"
                "    c.execute(\"SELECT dbpool_label(CAST(x'%s' AS TEXT))\" % h)\n"
                "    held.append(c)\n"
                "print('in', flush=True)\n"
                "sys.stdin.read()\n")
        self.holder = subprocess.Popen(
            ["/usr/bin/python3", "-c", code, EXT, os.fsdecode(self.odd), COMM.hex()]
            + [raw.hex() for raw, _, _ in LABELS],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env)
        self.procs.append(self.holder)
        self.assertEqual(self.holder.stdout.readline(), b"in\n")
        self.shown_dir = self.dir  # an ordinary temporary directory: ASCII

    def run_ctl(self, *args):
        r = subprocess.run([DBPOOLCTL] + list(args), capture_output=True, env=self.env,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode("utf-8")  # strict: fails on invalid UTF-8

    def test_json_replaces_invalid_bytes_and_escapes_controls(self):
        status = json.loads(self.run_ctl("status", self.odd, "--json"))  # strict JSON
        self.assertEqual(status["database"], os.path.join(self.shown_dir, NAME_JSON))
        conns = status["connections"]
        self.assertEqual(sorted(c["label"] for c in conns),
                         sorted(shown for _, shown, _ in LABELS))
        self.assertEqual({c["process"] for c in conns}, {COMM_JSON})
        self.assertEqual({c["pid"] for c in conns}, {self.holder.pid})
        [pool] = json.loads(self.run_ctl("list", "--json"))
        self.assertEqual(pool["database"], status["database"])
        self.assertEqual(pool["active"], len(LABELS))
        # The raw bytes: control characters as \\uXXXX, invalid ones \\ufffd.
        raw = self.run_ctl("status", self.odd, "--json")
        self.assertIn("t\\u0001u\\u001fv", raw)
        self.assertIn("\\ufffd", raw)
        self.assertNotIn("\x01", raw)

    def test_text_shows_invalid_bytes_and_controls_as_escapes(self):
        text = self.run_ctl("status", self.odd)
        db_text = os.path.join(self.shown_dir, NAME_TEXT)
        self.assertTrue(text.startswith("pool of %s\n" % db_text), text)
        rows = [line for line in text.splitlines()
                if line.startswith(str(self.holder.pid) + " ")]
        self.assertEqual(len(rows), len(LABELS), text)  # one line per holder
        labels = []
        for row in rows:
            m = re.search(r"  auto     (.*)$", row)
            self.assertIsNotNone(m, row)
            labels.append(m.group(1))
            self.assertIn(" %s " % COMM_TEXT, row)
        self.assertEqual(sorted(labels), sorted(text for _, _, text in LABELS))
        listing = self.run_ctl("list").splitlines()
        self.assertEqual(len(listing), 2, listing)
        self.assertTrue(listing[1].startswith(db_text + " "), listing[1])
        watch = self.run_ctl("watch", self.odd, "--count", "1").splitlines()
        self.assertEqual(len(watch), 1, watch)
        self.assertIn(" %s active=%d/16 " % (db_text, len(LABELS)), watch[0])

    def test_gc_and_rm_stay_one_valid_line(self):
        db_text = os.path.join(self.shown_dir, NAME_TEXT)
        lines = self.run_ctl("gc", "--dry-run").splitlines(keepends=True)
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("kept         %s (/dbpool." % db_text), lines[0])
        self.assertTrue(lines[0].endswith("): in use by its database\n"), lines[0])
        [entry] = json.loads(self.run_ctl("gc", "--dry-run", "--json"))
        self.assertEqual(entry["database"], os.path.join(self.shown_dir, NAME_JSON))
        self.assertEqual(self.run_ctl("rm", self.odd, "--force"),
                         "removed the pool of %s\n" % db_text)

    def test_prometheus_label_values_are_escaped(self):
        for args in (("metrics",), ("metrics", self.odd)):
            out = self.run_ctl(*args)
            self.assertIn('database="%s' % self.dir, out)
            self.assertIn('d\\"b\\\\n\\nl', out, args)  # \" \\ \n as the format says
            fams = parse_prometheus(out)
            [(_, labels, value)] = fams["dbpool_active_connections"]["samples"]
            self.assertEqual(labels["database"], os.path.join(self.shown_dir, NAME_JSON))
            self.assertEqual(value, len(LABELS))


if __name__ == "__main__":
    unittest.main(verbosity=2)
