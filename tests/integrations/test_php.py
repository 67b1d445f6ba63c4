"""The PHP recipes of docs/integrations.md: php-cli with
sqlite3.extension_dir (SQLite3 loads dbpool, PDO connections are counted
too; what each reports at a full pool), and a real php-fpm with the pool's
php_admin_value, spoken to over FastCGI: a connection per request, 503 with
Retry-After when the host's pool is full."""
import glob
import os
import shutil
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from integlib import (BUILD, IntegTestCase, fastcgi_get, need, recipe,  # noqa: E402
                      wait_for_socket)

CLI = """\
<?php
require __DIR__ . '/dbpool.php';
dbpool_load();
$path = getenv('APP_DB');
function held() {
    $v = new SQLite3(':memory:');
    return $v->querySingle('SELECT count(*) FROM pool_connections WHERE pid = ' . getmypid());
}
try {
    $a = new SQLite3($path);
    echo 'sqlite3 ', $a->querySingle('SELECT joined FROM pool_connections WHERE current'), "\\n";
    $b = new PDO('sqlite:' . $path);
    echo 'pdo ', $b->query('SELECT joined FROM pool_connections WHERE current')->fetchColumn(), "\\n";
    echo 'held ', held(), "\\n";
} catch (Throwable $e) {
    echo get_class($e), ' ', var_export($e->getCode(), true), ' ',
         dbpool_is_pool_full($e) ? 'full' : 'other', ' ', $e->getMessage(), "\\n";
}
try {
    $c = new PDO('sqlite:' . $path);
    $c->query('SELECT 1');
} catch (PDOException $e) {
    echo get_class($e), ' ', var_export($e->getCode(), true), ' ', $e->errorInfo[1], ' ',
         dbpool_is_pool_full($e) ? 'full' : 'other', "\\n";
}
"""


class PhpTest(IntegTestCase):
    def setUp(self):
        need("php", "php-cli php-sqlite3")
        super().setUp()
        r = subprocess.run(["php", "-m"], capture_output=True, text=True)
        if "sqlite3" not in r.stdout.split() or "pdo_sqlite" not in r.stdout.split():
            self.skipTest("PHP's sqlite3 and pdo_sqlite are not installed "
                          "(apt-get install php-sqlite3)")
        self.write("php_dbpool.php", dest="dbpool.php")
        self.extdir = os.path.realpath(BUILD)

    def php(self, script):
        r = subprocess.run(["php", "-d", "sqlite3.extension_dir=" + self.extdir, script],
                           cwd=self.dir, env=self.env, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual((r.returncode, r.stderr), (0, ""), r.stdout)
        return r.stdout.splitlines()

    def test_cli_loads_from_extension_dir_and_counts_pdo(self):
        script = self.write(None, CLI, dest="cli.php")
        self.assertEqual(self.php(script), ["sqlite3 auto", "pdo auto", "held 2"])
        self.fill_pool(timeout_ms=100)
        out = self.php(script)
        self.assertEqual(len(out), 2, out)
        self.assertTrue(out[0].startswith(
            "Exception 0 full Unable to open database: automatic extension loading failed: "
            "dbpool: pool full: all 4 connections to %s are in use (waited " % self.db), out[0])
        self.assertEqual(out[1], "PDOException 5 5 full")

    def test_fpm_a_connection_per_request_and_503_when_full(self):
        fpm = shutil.which("php-fpm8.2") or (glob.glob("/usr/sbin/php-fpm*") or [None])[0]
        if not fpm:
            self.skipTest("php-fpm is not installed (apt-get install php-fpm)")
        self.write("php_index.php", dest="index.php")
        sock = os.path.join(self.dir, "fpm.sock")
        pool = recipe("php_fpm_pool.conf")
        # The recipe's pool, pointed at this test's files (and run as root).
        pool = (pool.replace("/usr/lib/x86_64-linux-gnu", self.extdir)
                .replace("/run/php/app.sock", sock)
                .replace("www-data", "root"))
        self.assertIn("php_admin_value[sqlite3.extension_dir] = " + self.extdir, pool)
        conf = ("[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\n"
                "daemonize = no\n{pool}\nclear_env = no\npm.max_children = 2\n"
                ).format(d=self.dir, pool=pool)
        self.write(None, conf, dest="fpm.conf")
        p = self.spawn([fpm, "-F", "-R", "-y", os.path.join(self.dir, "fpm.conf")])
        wait_for_socket(sock, p)
        index = os.path.join(self.dir, "index.php")
        for n in (1, 2, 3):
            self.assertEqual(fastcgi_get(sock, index)[::2], (200, "%d\n" % n))
        # PHP closed each request's connection; the workers hold nothing.
        self.assertEqual(self.stats()[0], 0)
        self.fill_pool(timeout_ms=100)
        status, headers, body = fastcgi_get(sock, index)
        self.assertEqual((status, headers.get("Retry-After"), body),
                         (503, "1", "busy, try again\n"))
        p.send_signal(signal.SIGQUIT)
        p.wait(timeout=60)


if __name__ == "__main__":
    unittest.main()
