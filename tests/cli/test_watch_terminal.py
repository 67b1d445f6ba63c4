"""dbpoolctl watch on a real pseudo-terminal (Python's pty, no tmux needed):
the frame fits the window (holders past its height are counted, not
drawn), keys other than q are ignored, q / Q / Ctrl-C / SIGTERM / SIGHUP
quit, and every way out restores the terminal (main screen, cursor, input
mode). Off a terminal, a signal ends the plain lines with status 0."""
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dbpool_testlib import DBPOOLCTL, PoolTestCase  # noqa: E402

ENTER = "\033[?1049h\033[?25l"  # alternate screen, cursor hidden
RESTORE = "\033[?25h\033[?1049l"  # cursor shown, main screen


class WatchOnATerminal(PoolTestCase):
    max_connections = "4"

    def start(self, rows, cols=200, stdin_tty=True, interval="100"):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        p = subprocess.Popen([DBPOOLCTL, "watch", self.db, "--interval", interval],
                             stdin=slave if stdin_tty else subprocess.DEVNULL, stdout=slave,
                             stderr=subprocess.PIPE, env=self.env,
                             preexec_fn=self.controlling_terminal if stdin_tty else None)
        self.procs.append(p)
        self.master, self.slave, self.out = master, slave, b""
        return p

    @staticmethod
    def controlling_terminal():
        """In the child: a session of its own whose controlling terminal is
        the pty (stdin), so that the terminal's Ctrl-C reaches it."""
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    def read_until(self, predicate, what):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            text = self.out.decode("utf-8", "replace")
            if predicate(text):
                return text
            r, _, _ = select.select([self.master], [], [], 0.1)
            if r:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:  # EIO: nobody holds the terminal open any more
                    pass
        raise AssertionError("timed out waiting for %s; got %r" % (what, self.out[-2000:]))

    def frames(self, text):
        return text.count("utilization [")

    def first_frame(self, text):
        """The first frame, complete once a second one has started."""
        return text.split("\033[H\033[J")[1]

    def finish(self, p):
        self.assertEqual(p.wait(timeout=15), 0, p.stderr.read())
        text = self.read_until(lambda t: t.endswith(RESTORE), "the terminal restored")
        lflag = termios.tcgetattr(self.slave)[3]
        self.assertEqual(lflag & (termios.ICANON | termios.ECHO),
                         termios.ICANON | termios.ECHO, "input mode restored")
        return text

    def test_holders_past_the_window_are_counted_and_q_quits(self):
        shells = [self.shell(label="h%d" % i) for i in range(3)]
        p = self.start(rows=10)  # 10 - 8 lines of figures: room for 2 holders
        text = self.read_until(lambda t: self.frames(t) >= 2, "two frames")
        self.assertTrue(text.startswith(ENTER), text[:40])
        lflag = termios.tcgetattr(self.slave)[3]
        self.assertEqual(lflag & (termios.ICANON | termios.ECHO), 0, "keys one by one")
        frame = self.first_frame(text)
        self.assertIn("active 3/4", frame)
        self.assertIn("... and 1 more", frame)
        rows = [line for line in frame.splitlines()
                if re.match(r"\d+ ", line) and " sqlite3 " in line]
        self.assertEqual(len(rows), 2, frame)
        # Another key changes nothing: frames go on.
        os.write(self.master, b"x")
        seen = self.frames(text)
        self.read_until(lambda t: self.frames(t) >= seen + 2, "frames after a key")
        self.assertIsNone(p.poll())
        os.write(self.master, b"Q")
        text = self.finish(p)
        self.assertEqual(text.count(ENTER), 1)
        self.assertEqual(len(shells), 3)

    def test_over_full_and_paused_pool_and_a_window_without_size(self):
        for _ in range(2):
            self.shell()
        # The limit lowered below what is held: the bar stays 30 wide.
        self.assertEqual(self.ctl("set", self.db, "max_connections=1", "paused=1").returncode, 0)
        p = self.start(rows=0, cols=0)  # a terminal that reports no size: 24 rows
        text = self.read_until(lambda t: self.frames(t) >= 2, "two frames")
        frame = self.first_frame(text)
        self.assertIn("utilization [%s] 200%%" % ("#" * 30), frame)
        self.assertIn("active 2/1", frame)
        self.assertIn("paused yes", frame)
        self.assertNotIn("more", frame)
        p.send_signal(signal.SIGTERM)
        self.finish(p)

    def test_ctrl_c_restores_the_terminal(self):
        self.shell()
        p = self.start(rows=30)
        self.read_until(lambda t: self.frames(t) >= 1, "a frame")
        os.write(self.master, b"\x03")  # the terminal's interrupt character
        self.finish(p)

    def test_stdin_not_a_terminal_still_draws_and_quits_on_a_signal(self):
        self.shell()
        p = self.start(rows=30, stdin_tty=False)
        self.read_until(lambda t: self.frames(t) >= 2, "two frames")
        p.send_signal(signal.SIGHUP)
        self.finish(p)


class WatchPlainLines(PoolTestCase):

    def test_a_signal_ends_plain_lines_with_status_zero(self):
        self.shell()
        for sig in (signal.SIGTERM, signal.SIGINT):
            p = subprocess.Popen([DBPOOLCTL, "watch", self.db, "--interval", "50"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=self.env, text=True)
            self.procs.append(p)
            first = p.stdout.readline()
            self.assertIn(" %s active=1/3 " % self.db, first)
            p.send_signal(sig)
            out, err = p.communicate(timeout=15)
            self.assertEqual((p.returncode, err), (0, ""), sig)
            for line in out.splitlines():
                self.assertIn(" %s active=1/3 " % self.db, line)


if __name__ == "__main__":
    unittest.main(verbosity=2)
