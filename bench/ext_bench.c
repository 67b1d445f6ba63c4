/*
** ext_bench.c -- what loading the extension costs a SQLite application.
**
**  1. point-SELECT throughput on an open connection, without and with the
**     extension (connection opened before loading vs after: through the VFS
**     shim and holding a slot), interleaved in one run;
**  2. the cost of opening and closing a connection without and with it
**     (a forked child that never loads it measures "without", alternately).
**
** Usage: ext_bench [quick]
**        ext_bench count plain|pooled   (only the SELECT loop on one
**        connection: bench/run.sh counts its instructions with callgrind,
**        which is exact and immune to the machine's noise)
*/
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static int quick;
static char db_path[256], ext_path[512];

static void check(int rc, sqlite3 *db, const char *what)
{
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    fprintf(stderr, "ext_bench: %s: %s\n", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    exit(1);
  }
}

/* ns per point SELECT (step + reset of a prepared statement). */
__attribute__((noinline)) static double point_selects(sqlite3_stmt *st, int n)
{
  double t0 = now_ns();
  for (int i = 0; i < n; i++) {
    sqlite3_bind_int(st, 1, 1 + i % 1000);
    if (sqlite3_step(st) != SQLITE_ROW) exit(2);
    sqlite3_reset(st);
  }
  return (now_ns() - t0) / n;
}

/* ns per open + close. */
static double open_close(int n)
{
  double t0 = now_ns();
  for (int i = 0; i < n; i++) {
    sqlite3 *db;
    check(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL), NULL, "open");
    sqlite3_close(db);
  }
  return (now_ns() - t0) / n;
}

static void setup_db(void)
{
  sqlite3 *db;
  check(sqlite3_open(db_path, &db), NULL, "create");
  check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
                         "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<1000)"
                         "INSERT INTO t SELECT i, hex(randomblob(16)) FROM c;",
                     NULL, NULL, NULL), db, "schema");
  sqlite3_close(db);
}

int main(int argc, char **argv)
{
  quick = argc > 1 && strcmp(argv[1], "quick") == 0;
  const char *count = argc > 2 && strcmp(argv[1], "count") == 0 ? argv[2] : NULL;
  char ns[64], dir[] = "/tmp/dbpool-extbench-XXXXXX";
  snprintf(ns, sizeof ns, "extbench%d", (int)getpid());
  setenv("DBPOOL_NAMESPACE", ns, 1);
  if (!mkdtemp(dir)) return 1;
  snprintf(db_path, sizeof db_path, "%s/bench.db", dir);
  const char *b = getenv("B") ? getenv("B") : "build";
  snprintf(ext_path, sizeof ext_path, "%s/dbpool", b);
  setup_db();

  /* Without: opened before loading. With: opened after. */
  sqlite3 *plain, *loader, *pooled;
  check(sqlite3_open(db_path, &plain), NULL, "open");
  check(sqlite3_open(":memory:", &loader), NULL, "open");
  sqlite3_enable_load_extension(loader, 1);
  char *err = NULL;
  if (sqlite3_load_extension(loader, ext_path, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "ext_bench: load %s: %s\n", ext_path, err);
    return 1;
  }
  check(sqlite3_open(db_path, &pooled), NULL, "open");
  const char *sql = "SELECT v FROM t WHERE id = ?";
  sqlite3_stmt *s_plain, *s_pooled;
  check(sqlite3_prepare_v2(plain, sql, -1, &s_plain, NULL), plain, "prepare");
  check(sqlite3_prepare_v2(pooled, sql, -1, &s_pooled, NULL), pooled, "prepare");

  if (count) {
    point_selects(strcmp(count, "pooled") == 0 ? s_pooled : s_plain, 20000);
    sqlite3_finalize(s_plain);
    sqlite3_finalize(s_pooled);
    sqlite3_close(plain);
    sqlite3_close(pooled);
    sqlite3_close(loader);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s; rm -f /dev/shm/dbpool.%s.*", dir, ns);
    return system(cmd) != 0;
  }
  /* Many short alternating rounds; the median of the per-round ratios is
  ** robust to the load drifting during the run. */
  enum { REPS = 9, ROUNDS = 41 };
  int n = quick ? 5000 : 20000;
  double a[ROUNDS], w[ROUNDS], ratio[ROUNDS];
  point_selects(s_plain, n); /* warm both */
  point_selects(s_pooled, n);
  for (int r = 0; r < ROUNDS; r++) {
    if (r % 2) {
      w[r] = point_selects(s_pooled, n);
      a[r] = point_selects(s_plain, n);
    } else {
      a[r] = point_selects(s_plain, n);
      w[r] = point_selects(s_pooled, n);
    }
    ratio[r] = w[r] / a[r];
  }
  double mr = median(ratio, ROUNDS), ma = median(a, ROUNDS), mw = median(w, ROUNDS);
  printf("== extension (%s)\n", quick ? "quick" : "full");
  printf("point SELECT on an open connection: without %.0f ns (%.0f/s), with %.0f ns (%.0f/s)"
         "   overhead %+.1f%% (median of %d paired rounds; goal <= 2%%)\n", ma, 1e9 / ma, mw,
         1e9 / mw, (mr - 1) * 100, ROUNDS);
  sqlite3_finalize(s_plain);
  sqlite3_finalize(s_pooled);
  sqlite3_close(plain);
  sqlite3_close(pooled);

  /* Open + close: a child that never loads the extension, alternately. */
  int m = quick ? 300 : 2000;
  double oa[REPS], ow[REPS];
  for (int r = 0; r < REPS; r++) {
    int fd[2];
    if (pipe(fd) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
      sqlite3_reset_auto_extension(); /* the child opens as if never loaded */
      sqlite3_vfs_register(sqlite3_vfs_find("unix"), 1);
      double t = open_close(m);
      if (write(fd[1], &t, sizeof t) != sizeof t) _exit(1);
      _exit(0);
    }
    if (read(fd[0], &oa[r], sizeof oa[r]) != sizeof oa[r]) return 1;
    waitpid(pid, NULL, 0);
    close(fd[0]);
    close(fd[1]);
    ow[r] = open_close(m);
  }
  double moa = median(oa, REPS), mow = median(ow, REPS);
  printf("open + close a connection: without %.1f us, with %.1f us (%.2fx; +%.1f us for"
         " attaching to the pool and taking a slot)\n", moa / 1e3, mow / 1e3, mow / moa,
         (mow - moa) / 1e3);

  sqlite3_close(loader);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s; rm -f /dev/shm/dbpool.%s.*", dir, ns);
  if (system(cmd) != 0) return 1;
  return 0;
}
