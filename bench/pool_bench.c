/*
** pool_bench.c -- the in-process pool against a naive mutex + array pool of
** the same connections, in one run:
**
**  1. uncontended acquire + release (no query), and how that compares with
**     opening a connection, running a first query and closing it on a
**     20-table schema;
**  2. 8 threads on 4 connections, each acquire + point SELECT + release:
**     throughput, Jain fairness across threads, p99 and longest wait.
**
** Usage: pool_bench [quick]
**        pool_bench count ours|naive   (only uncontended acquire+release
**        pairs: bench/run.sh counts their instructions with callgrind)
*/
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#include "dbpool.h"

static int quick;
static char db_path[256];

/* ------------------------------------------------------ the naive pool */

typedef struct naive_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  sqlite3 *conns[64];
  int n;
} naive_pool;

static void naive_init(naive_pool *np, int size)
{
  pthread_mutex_init(&np->mu, NULL);
  pthread_cond_init(&np->cv, NULL);
  np->n = 0;
  for (int i = 0; i < size; i++) {
    sqlite3 *db;
    sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    np->conns[np->n++] = db;
  }
}

static sqlite3 *naive_acquire(naive_pool *np)
{
  pthread_mutex_lock(&np->mu);
  while (np->n == 0) pthread_cond_wait(&np->cv, &np->mu);
  sqlite3 *db = np->conns[--np->n];
  pthread_mutex_unlock(&np->mu);
  return db;
}

static void naive_release(naive_pool *np, sqlite3 *db)
{
  pthread_mutex_lock(&np->mu);
  np->conns[np->n++] = db;
  pthread_cond_signal(&np->cv);
  pthread_mutex_unlock(&np->mu);
}

static void naive_destroy(naive_pool *np)
{
  for (int i = 0; i < np->n; i++) sqlite3_close(np->conns[i]);
}

/* -------------------------------------------------- 1. uncontended cost */

__attribute__((noinline)) static double time_ours(dbpool *p, long n)
{
  sqlite3 *db;
  double t0 = now_ns();
  for (long i = 0; i < n; i++) {
    dbpool_acquire(p, &db);
    dbpool_release(p, db);
  }
  return (now_ns() - t0) / (double)n;
}

__attribute__((noinline)) static double time_naive(naive_pool *np, long n)
{
  double t0 = now_ns();
  for (long i = 0; i < n; i++) naive_release(np, naive_acquire(np));
  return (now_ns() - t0) / (double)n;
}

static double open_query_close(int n)
{
  double t0 = now_ns();
  for (int i = 0; i < n; i++) {
    sqlite3 *db;
    sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL);
    sqlite3_exec(db, "SELECT v FROM t0 WHERE id = 1", NULL, NULL, NULL);
    sqlite3_close(db);
  }
  return (now_ns() - t0) / n;
}

/* ------------------------------------------------- 2. 8 threads, 4 conns */

enum { THREADS = 8, CONNS = 4, MAX_SAMPLES = 1 << 20 };

typedef struct run_state {
  dbpool *pool;
  naive_pool *naive;
  _Atomic int go, stop;
  long count[THREADS];
  double *waits[THREADS];
  long nwaits[THREADS];
} run_state;

typedef struct thread_arg {
  run_state *rs;
  int id;
} thread_arg;

static pthread_mutex_t g_stmts_mu = PTHREAD_MUTEX_INITIALIZER;
static sqlite3_stmt *g_stmts[THREADS * 2 * 64];
static int g_nstmts;

static void *worker(void *p)
{
  thread_arg *a = p;
  run_state *rs = a->rs;
  sqlite3_stmt *cache[64] = {0};
  sqlite3 *cache_db[64] = {0};
  while (!atomic_load(&rs->go)) {
  }
  long count = 0, nw = 0;
  while (!atomic_load_explicit(&rs->stop, memory_order_relaxed)) {
    double t0 = now_ns();
    sqlite3 *db;
    if (rs->pool) dbpool_acquire(rs->pool, &db); else db = naive_acquire(rs->naive);
    double w = now_ns() - t0;
    if (nw < MAX_SAMPLES) rs->waits[a->id][nw++] = w;
    /* A point SELECT with a statement cached per connection. */
    int slot = 0;
    while (cache_db[slot] && cache_db[slot] != db) slot++;
    if (!cache_db[slot]) {
      cache_db[slot] = db;
      sqlite3_prepare_v3(db, "SELECT v FROM t0 WHERE id = ?", -1, SQLITE_PREPARE_PERSISTENT,
                         &cache[slot], NULL);
    }
    sqlite3_stmt *st = cache[slot];
    sqlite3_bind_int(st, 1, 1 + (int)(count % 100));
    sqlite3_step(st);
    sqlite3_reset(st);
    if (rs->pool) dbpool_release(rs->pool, db); else naive_release(rs->naive, db);
    count++;
  }
  rs->count[a->id] = count;
  rs->nwaits[a->id] = nw;
  /* Finalized by run_threads once every thread is done and the
  ** connections are idle. */
  pthread_mutex_lock(&g_stmts_mu);
  for (int i = 0; cache_db[i]; i++) g_stmts[g_nstmts++] = cache[i];
  pthread_mutex_unlock(&g_stmts_mu);
  return NULL;
}

typedef struct run_result {
  double ops_per_s, jain, p99_us, p999_us, max_us;
} run_result;

static run_result run_threads(dbpool *pool, naive_pool *naive, double seconds)
{
  run_state *rs = calloc(1, sizeof *rs);
  rs->pool = pool;
  rs->naive = naive;
  pthread_t t[THREADS];
  thread_arg args[THREADS];
  for (int i = 0; i < THREADS; i++) {
    rs->waits[i] = malloc(MAX_SAMPLES * sizeof(double));
    args[i] = (thread_arg){rs, i};
    pthread_create(&t[i], NULL, worker, &args[i]);
  }
  atomic_store(&rs->go, 1);
  double t0 = now_ns();
  usleep((useconds_t)(seconds * 1e6));
  atomic_store(&rs->stop, 1);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  double elapsed = (now_ns() - t0) / 1e9;
  /* Every connection is idle again: its statements go, so that the next
  ** round does not release connections carrying this round's too. */
  for (int i = 0; i < g_nstmts; i++) sqlite3_finalize(g_stmts[i]);
  g_nstmts = 0;
  double sum = 0, sq = 0;
  long total_w = 0;
  for (int i = 0; i < THREADS; i++) {
    sum += (double)rs->count[i];
    sq += (double)rs->count[i] * (double)rs->count[i];
    total_w += rs->nwaits[i];
  }
  double *all = malloc((size_t)total_w * sizeof *all);
  long k = 0;
  for (int i = 0; i < THREADS; i++) {
    memcpy(all + k, rs->waits[i], (size_t)rs->nwaits[i] * sizeof *all);
    k += rs->nwaits[i];
    free(rs->waits[i]);
  }
  qsort(all, (size_t)total_w, sizeof *all, cmp_double);
  run_result r = {sum / elapsed, sq > 0 ? sum * sum / (THREADS * sq) : 0,
                  total_w ? all[(long)(total_w * 0.99)] / 1e3 : 0,
                  total_w ? all[(long)(total_w * 0.999)] / 1e3 : 0,
                  total_w ? all[total_w - 1] / 1e3 : 0};
  free(all);
  free(rs);
  return r;
}

static void setup_db(void)
{
  sqlite3 *db;
  sqlite3_open(db_path, &db);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  for (int i = 0; i < 20; i++) {
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE TABLE t%d(id INTEGER PRIMARY KEY, v TEXT, w INTEGER, x REAL);"
             "CREATE INDEX t%d_w ON t%d(w);"
             "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<100)"
             "INSERT INTO t%d SELECT i, hex(randomblob(8)), i*7, i/3.0 FROM c;",
             i, i, i, i);
    sqlite3_exec(db, sql, NULL, NULL, NULL);
  }
  sqlite3_close(db);
}

int main(int argc, char **argv)
{
  quick = argc > 1 && strcmp(argv[1], "quick") == 0;
  char ns[64], dir[] = "/tmp/dbpool-poolbench-XXXXXX";
  snprintf(ns, sizeof ns, "poolbench%d", (int)getpid());
  setenv("DBPOOL_NAMESPACE", ns, 1);
  if (!mkdtemp(dir)) return 1;
  snprintf(db_path, sizeof db_path, "%s/bench.db", dir);
  setup_db();

  dbpool_config cfg;
  dbpool_config_init(&cfg);
  cfg.max_size = CONNS;
  dbpool *pool;
  if (dbpool_open(db_path, &cfg, &pool) != SQLITE_OK) {
    fprintf(stderr, "pool_bench: %s\n", dbpool_errmsg(NULL));
    return 1;
  }
  naive_pool naive;
  naive_init(&naive, CONNS);
  sqlite3 *warm[CONNS];
  for (int i = 0; i < CONNS; i++) dbpool_acquire(pool, &warm[i]);
  for (int i = 0; i < CONNS; i++) dbpool_release(pool, warm[i]);

  if (argc > 2 && strcmp(argv[1], "count") == 0) {
    if (strcmp(argv[2], "ours") == 0) time_ours(pool, 100000);
    else time_naive(&naive, 100000);
    dbpool_close(pool);
    naive_destroy(&naive);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s; rm -f /dev/shm/dbpool.%s.*", dir, ns);
    return system(cmd) != 0;
  }
  printf("== in-process pool (%s)\n", quick ? "quick" : "full");
  enum { MAX_REPS = 21 };
  int reps = quick ? 9 : MAX_REPS;
  long n = quick ? 100000 : 500000;
  double ours[MAX_REPS], base[MAX_REPS], ratio[MAX_REPS];
  time_ours(pool, n); /* warm both */
  time_naive(&naive, n);
  for (int r = 0; r < reps; r++) { /* interleaved, the order alternating */
    if (r % 2) {
      base[r] = time_naive(&naive, n);
      ours[r] = time_ours(pool, n);
    } else {
      ours[r] = time_ours(pool, n);
      base[r] = time_naive(&naive, n);
    }
    ratio[r] = ours[r] / base[r];
  }
  double o = median(ours, reps), b = median(base, reps);
  spread q = spread_of(ratio, reps);
  double oqc = open_query_close(quick ? 100 : 500);
  printf("uncontended acquire+release   %5.1f ns   naive mutex+array pool %5.1f ns   ratio %.2fx"
         " (IQR %.2f-%.2f, %d rounds)   (goal <= 23 ns, <= 1.5x)\n", o, b, q.p50, q.p25, q.p75,
         reps);
  printf("open + first query + close (20 tables) %.0f us = %.0fx the pooled acquire+release"
         "   (goal >= 1000x)\n", oqc / 1e3, oqc / o);

  /* Contended: alternating rounds of each, the order alternating too; the
  ** figures are medians over rounds, the ratios per round (same minute). */
  enum { MAX_ROUNDS = 7 };
  int rounds = quick ? 3 : MAX_ROUNDS;
  double secs = quick ? 0.4 : 1.0;
  run_result ro[MAX_ROUNDS], rn[MAX_ROUNDS];
  double ops_o[MAX_ROUNDS], ops_n[MAX_ROUNDS], jain_o[MAX_ROUNDS], jain_n[MAX_ROUNDS],
      p99_o[MAX_ROUNDS], p99_n[MAX_ROUNDS], max_o[MAX_ROUNDS], max_n[MAX_ROUNDS],
      p999_o[MAX_ROUNDS], p999_n[MAX_ROUNDS], r_ops[MAX_ROUNDS], r_p99[MAX_ROUNDS],
      r_p999[MAX_ROUNDS];
  for (int r = 0; r < rounds; r++) {
    if (r % 2) {
      rn[r] = run_threads(NULL, &naive, secs);
      ro[r] = run_threads(pool, NULL, secs);
    } else {
      ro[r] = run_threads(pool, NULL, secs);
      rn[r] = run_threads(NULL, &naive, secs);
    }
    ops_o[r] = ro[r].ops_per_s, ops_n[r] = rn[r].ops_per_s;
    jain_o[r] = ro[r].jain, jain_n[r] = rn[r].jain;
    p99_o[r] = ro[r].p99_us, p99_n[r] = rn[r].p99_us;
    max_o[r] = ro[r].max_us, max_n[r] = rn[r].max_us;
    p999_o[r] = ro[r].p999_us, p999_n[r] = rn[r].p999_us;
    r_ops[r] = ops_o[r] / ops_n[r];
    r_p99[r] = p99_o[r] / p99_n[r];
    r_p999[r] = p999_o[r] / p999_n[r];
  }
  printf("%d threads on %d connections, acquire + point SELECT + release (median of %d"
         " alternating rounds of %.1f s; [min-max]):\n", THREADS, CONNS, rounds, secs);
  printf("  %-22s %9.0f ops/s  Jain %.4f [%.4f-%.4f]  wait p99 %7.2f us  p99.9 %8.1f us"
         "  longest %8.1f us\n", "dbpool", median(ops_o, rounds), median(jain_o, rounds),
         quantile(jain_o, rounds, 0), quantile(jain_o, rounds, 1), median(p99_o, rounds),
         median(p999_o, rounds), median(max_o, rounds));
  printf("  %-22s %9.0f ops/s  Jain %.4f [%.4f-%.4f]  wait p99 %7.2f us  p99.9 %8.1f us"
         "  longest %8.1f us\n", "naive mutex+array pool", median(ops_n, rounds),
         median(jain_n, rounds), quantile(jain_n, rounds, 0), quantile(jain_n, rounds, 1),
         median(p99_n, rounds), median(p999_n, rounds), median(max_n, rounds));
  spread qo = spread_of(r_ops, rounds), qp = spread_of(r_p99, rounds),
         q9 = spread_of(r_p999, rounds);
  printf("  ratios dbpool/naive: throughput %.2fx [%.2f-%.2f]  p99 wait %.2fx [%.2f-%.2f]"
         "  p99.9 wait %.2fx [%.2f-%.2f]   (goal: throughput >= 1x, Jain >= 0.99, p99 wait"
         " <= 0.25x naive's)\n", qo.p50, quantile(r_ops, rounds, 0), quantile(r_ops, rounds, 1),
         qp.p50, quantile(r_p99, rounds, 0), quantile(r_p99, rounds, 1), q9.p50,
         quantile(r_p999, rounds, 0), quantile(r_p999, rounds, 1));

  for (int i = 0; i < g_nstmts; i++) sqlite3_finalize(g_stmts[i]);
  dbpool_close(pool);
  naive_destroy(&naive);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s; rm -f /dev/shm/dbpool.%s.*", dir, ns);
  return system(cmd) != 0;
}
