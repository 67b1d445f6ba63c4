/*
** ext_bench.c -- what loading the extension costs a SQLite application.
**
**  1. point-SELECT throughput on an open connection, without and with the
**     extension (connection opened before loading vs after: through the VFS
**     shim and holding a slot), interleaved in one run;
**  2. the cost of opening and closing a connection without and with it:
**     two worker processes forked before anything is loaded, one that
**     never loads the extension and one that does, run short rounds of
**     open + close in turn (the order alternating); the figure is the
**     median of the per-round differences and ratios, with their spread.
**
** Usage: ext_bench [quick]
**        ext_bench count plain|pooled   (only the SELECT loop on one
**        connection: bench/run.sh counts its instructions with callgrind,
**        which is exact and immune to the machine's noise)
**        ext_bench count open-plain|open-pooled   (only open + close,
**        after a warm-up that leaves out what the first open does once)
*/
#include <fcntl.h>
#include <signal.h>
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
__attribute__((noinline)) static double open_close(int n)
{
  double t0 = now_ns();
  for (int i = 0; i < n; i++) {
    sqlite3 *db;
    check(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL), NULL, "open");
    sqlite3_close(db);
  }
  return (now_ns() - t0) / n;
}

/* CPU ns per open + close, this thread's: on a shared machine, time other
** processes take from us is not ours (wall time wanders 2x here). */
static double open_close_cpu(int n)
{
  struct timespec a, b;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
  open_close(n);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
  return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n;
}

/* The same, the function whose instructions bench/run.sh counts. */
__attribute__((noinline)) static double open_close_counted(int n) { return open_close(n); }

static int load_extension(sqlite3 *db)
{
  char *err = NULL;
  sqlite3_enable_load_extension(db, 1);
  if (sqlite3_load_extension(db, ext_path, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "ext_bench: load %s: %s\n", ext_path, err);
    return 1;
  }
  return 0;
}

/* A process that opens and closes connections on command: "n" on its
** pipe runs open_close(n) and answers with the CPU ns per open + close. */
typedef struct opener {
  pid_t pid;
  int cmd, answer;
} opener;

static opener start_opener(int with_extension)
{
  int to[2], from[2];
  opener o = {-1, -1, -1};
  if (pipe(to) != 0 || pipe(from) != 0) return o;
  o.pid = fork();
  if (o.pid == 0) {
    close(to[1]);
    close(from[0]);
    sqlite3 *loader = NULL;
    if (with_extension) {
      sqlite3_open(":memory:", &loader);
      if (load_extension(loader)) _exit(1);
    }
    open_close(20); /* the first open attaches the pool, once */
    int n;
    while (read(to[0], &n, sizeof n) == sizeof n && n > 0) { /* 0: stop */
      double t = open_close_cpu(n);
      if (write(from[1], &t, sizeof t) != sizeof t) break;
    }
    if (loader) sqlite3_close(loader);
    _exit(0);
  }
  close(to[0]);
  close(from[1]);
  o.cmd = to[1];
  o.answer = from[0];
  return o;
}

static double opener_run(opener *o, int n)
{
  double t = -1;
  if (write(o->cmd, &n, sizeof n) != sizeof n || read(o->answer, &t, sizeof t) != sizeof t) {
    fprintf(stderr, "ext_bench: an opener process failed\n");
    exit(1);
  }
  return t;
}

static void opener_stop(opener *o)
{
  int stop = 0; /* (the other opener holds our pipe too: no EOF) */
  if (write(o->cmd, &stop, sizeof stop) != sizeof stop) kill(o->pid, SIGKILL);
  close(o->cmd);
  close(o->answer);
  waitpid(o->pid, NULL, 0);
}

/* Open + close without and with the extension, in alternating rounds. */
static void bench_open_close(opener *plain, opener *pooled)
{
  enum { MAX_ROUNDS = 61 };
  int rounds = quick ? 31 : MAX_ROUNDS, m = quick ? 100 : 300;
  double a[MAX_ROUNDS], w[MAX_ROUNDS], diff[MAX_ROUNDS], ratio[MAX_ROUNDS];
  opener_run(plain, m); /* warm both */
  opener_run(pooled, m);
  for (int r = 0; r < rounds; r++) {
    if (r % 2) {
      w[r] = opener_run(pooled, m);
      a[r] = opener_run(plain, m);
    } else {
      a[r] = opener_run(plain, m);
      w[r] = opener_run(pooled, m);
    }
    diff[r] = (w[r] - a[r]) / 1e3;
    ratio[r] = w[r] / a[r];
  }
  double ma = median(a, rounds), mw = median(w, rounds);
  double d25 = quantile(diff, rounds, 0.25), d50 = quantile(diff, rounds, 0.5),
         d75 = quantile(diff, rounds, 0.75);
  double r25 = quantile(ratio, rounds, 0.25), r50 = quantile(ratio, rounds, 0.5),
         r75 = quantile(ratio, rounds, 0.75);
  printf("open + close a connection (CPU time): without %.1f us, with %.1f us: %+.2f us"
         " (IQR %+.2f..%+.2f), ratio %.3fx (IQR %.3f-%.3f)   (median of %d alternating rounds"
         " of %d; goal <= +3 us and <= 1.08x)\n", ma / 1e3, mw / 1e3, d50, d25, d75, r50, r25, r75,
         rounds, m);
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

  if (count && strncmp(count, "open-", 5) == 0) {
    sqlite3 *loader;
    sqlite3_open(":memory:", &loader);
    if (strcmp(count, "open-pooled") == 0 && load_extension(loader)) return 1;
    open_close(20); /* the first open attaches the pool, once: not counted */
    open_close_counted(2000);
    sqlite3_close(loader);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s; rm -f /dev/shm/dbpool.%s.*", dir, ns);
    return system(cmd) != 0;
  }
  /* Forked before anything is loaded: alike but for the extension. */
  opener plain_opener = {-1, -1, -1}, pooled_opener = {-1, -1, -1};
  if (!count) {
    plain_opener = start_opener(0);
    pooled_opener = start_opener(1);
    if (plain_opener.pid < 0 || pooled_opener.pid < 0) return 1;
  }

  /* Without: opened before loading. With: opened after. */
  sqlite3 *plain, *loader, *pooled;
  check(sqlite3_open(db_path, &plain), NULL, "open");
  check(sqlite3_open(":memory:", &loader), NULL, "open");
  if (load_extension(loader)) return 1;
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
  enum { ROUNDS = 41 };
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

  bench_open_close(&plain_opener, &pooled_opener);
  opener_stop(&plain_opener);
  opener_stop(&pooled_opener);

  sqlite3_close(loader);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s; rm -f /dev/shm/dbpool.%s.*", dir, ns);
  if (system(cmd) != 0) return 1;
  return 0;
}
