"""The Go recipe of docs/integrations.md (database/sql with Debian's
mattn/go-sqlite3, built in GOPATH mode): dbpool loaded once on an in-memory
connection, SetMaxOpenConns at the process's share keeps two processes
under the cap without errors; a full pool is told apart (isPoolFull); and
dbpoolctl run reaches an unmodified Go program."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from integlib import BUILD, DBPOOLCTL, EXT, IntegTestCase, need, recipe  # noqa: E402

GOSRC = "/usr/share/gocode/src/github.com/mattn/go-sqlite3"

MAIN = """\
package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"sync"

	sqlite3 "github.com/mattn/go-sqlite3"
)

func main() {
	path := os.Args[2]
	switch os.Args[1] {
	case "work": // share, goroutines, inserts each
		share, _ := strconv.Atoi(os.Args[3])
		workers, _ := strconv.Atoi(os.Args[4])
		each, _ := strconv.Atoi(os.Args[5])
		db, err := openCounted(path, share)
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		var joined string
		if err := db.QueryRow("SELECT joined FROM pool_connections WHERE current").Scan(&joined); err != nil {
			fmt.Println("query:", err)
			os.Exit(1)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		errs := 0
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if _, err := db.Exec("INSERT INTO hits(at) VALUES (datetime('now'))"); err != nil {
						mu.Lock()
						errs++
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		db.Close() // gives the slots back (a process that just exits has them reclaimed)
		fmt.Println(joined, errs)
	case "full":
		db, err := openCounted(path, 1)
		if err == nil {
			_, err = db.Exec("SELECT 1")
		}
		var e sqlite3.Error
		fmt.Println(isPoolFull(err), err)
		_ = e
	case "plain": // no dbpool in the code at all
		db, _ := sql.Open("sqlite3", path)
		var joined string
		err := db.QueryRow("SELECT joined FROM pool_connections WHERE current").Scan(&joined)
		fmt.Println(joined, err)
	case "every": // the pattern to avoid: the extension loaded into every connection
		sql.Register("sqlite3_every", &sqlite3.SQLiteDriver{Extensions: []string{os.Getenv("DBPOOL_EXTENSION")}})
		db, _ := sql.Open("sqlite3_every", path)
		ctx := context.Background()
		c1, err := db.Conn(ctx) // loads dbpool: counted by that load
		if err == nil {
			_, err = db.Conn(ctx) // counted when opened, then loaded again
		}
		var n int
		if c1 != nil {
			c1.QueryRowContext(ctx, "SELECT active FROM pool_stats WHERE database = ?", path).Scan(&n)
		}
		fmt.Println(n, err)
	}
}
"""


class GoTest(IntegTestCase):
    max_connections = "4"

    @classmethod
    def setUpClass(cls):
        need("go", "golang-go golang-github-mattn-go-sqlite3-dev")
        if not os.path.isdir(GOSRC):
            raise unittest.SkipTest("mattn/go-sqlite3 is not installed (apt-get install "
                                    "golang-github-mattn-go-sqlite3-dev)")
        cls.src = tempfile.mkdtemp(prefix="dbpool-go-")
        with open(os.path.join(cls.src, "dbpool.go"), "w") as f:
            f.write(recipe("dbpool.go"))
        with open(os.path.join(cls.src, "main.go"), "w") as f:
            f.write(MAIN)
        env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode",
                   GOCACHE=os.path.join(os.path.realpath(BUILD), "go-cache"), GOFLAGS="")
        cls.prog = os.path.join(cls.src, "app")
        r = subprocess.run(["go", "build", "-o", cls.prog, "dbpool.go", "main.go"],
                           cwd=cls.src, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            shutil.rmtree(cls.src)
            raise AssertionError("go build failed:\n" + r.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.src, ignore_errors=True)

    def go(self, *args, prefix=()):
        r = subprocess.run(list(prefix) + [self.prog] + list(args), cwd=self.dir,
                           env=self.env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.stderr, "")
        return r.returncode, r.stdout.strip()

    def test_two_processes_at_their_share_never_fail(self):
        """Cap 4, two processes with SetMaxOpenConns(2) and 8 goroutines each."""
        procs = [self.spawn([self.prog, "work", self.db, "2", "8", "40"]) for _ in range(2)]
        for p in procs:
            out, err = p.communicate(timeout=300)
            self.assertEqual((p.returncode, out, err), (0, "auto 0\n", ""))
        rows = subprocess.run(["sqlite3", self.db, "SELECT count(*) FROM hits"],
                              capture_output=True, text=True).stdout
        self.assertEqual(rows, "640\n")
        self.assertLessEqual(self.peak(), 4)
        self.assertEqual(self.stats()[0], 0)

    def test_a_full_pool_is_told_apart(self):
        self.fill_pool(timeout_ms=100)
        rc, out = self.go("full", self.db)
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith(
            "true automatic extension loading failed: dbpool: pool full: all 4 "
            "connections to %s are in use (waited " % self.db), out)

    def test_dbpoolctl_run_reaches_an_unmodified_go_program(self):
        rc, out = self.go("plain", self.db, prefix=(DBPOOLCTL, "run", "--"))
        self.assertEqual((rc, out), (0, "preload <nil>"))

    def test_loading_into_every_connection_is_harmless_at_the_cap(self):
        """Needs issue 10 item 6."""
        self.fill_pool(2, timeout_ms=200)
        rc, out = self.go("every", self.db)
        self.assertEqual((rc, out), (0, "4 <nil>"))


if __name__ == "__main__":
    unittest.main()
