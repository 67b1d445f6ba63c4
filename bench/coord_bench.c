/*
** coord_bench.c -- the coordinator's figures, each next to a bare primitive
** measured in the same run (this machine is noisy: compare ratios, not ns).
**
**  1. uncontended acquire + release vs a process-shared sem_trywait+sem_post
**  2. the same with 0, 10, 100 and 1000 other slots held (flat?)
**  3. 64 processes, limit 1, hold 1 us: Jain fairness, longest wait and
**     handoffs/s, vs a SysV semaphore with SEM_UNDO
**  4. reclaim: SIGKILL of a holder to a waiter's acquire, p50/p99/max
**
** Usage: coord_bench [quick]   ("quick" shortens every phase, for CI)
**        coord_bench count ours|sem   (only 100000 uncontended pairs:
**        bench/run.sh counts their instructions with callgrind)
*/
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#include "coordinator/private.h" /* dbp_coord_waiting */

static int quick;
static char db_path[256];

static void *shared(size_t n)
{
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(1);
  }
  memset(p, 0, n);
  return p;
}

static void die(const char *what, int rc)
{
  fprintf(stderr, "coord_bench: %s: %s (%s)\n", what, dbpool_strerror(rc),
          dbpool_last_error());
  exit(1);
}

/* ---------------------------------------------------- 1 and 2: fast path */

__attribute__((noinline)) static double time_pairs(dbpool_holder *h, long n)
{
  double t0 = now_ns();
  for (long i = 0; i < n; i++) {
    dbpool_holder_acquire(h, 0);
    dbpool_holder_release(h);
  }
  return (now_ns() - t0) / (double)n;
}

__attribute__((noinline)) static double time_sem_pairs(sem_t *s, long n)
{
  double t0 = now_ns();
  for (long i = 0; i < n; i++) {
    sem_trywait(s);
    sem_post(s);
  }
  return (now_ns() - t0) / (double)n;
}

static void bench_fast_path(void)
{
  dbpool_coord *c;
  dbpool_holder *h;
  int rc = dbpool_coord_open(db_path, 0, &c);
  if (rc) die("open", rc);
  if ((rc = dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1001))) die("set", rc);
  if ((rc = dbpool_holder_new(c, &h))) die("holder", rc);
  sem_t *s = shared(sizeof *s);
  sem_init(s, 1, 1);
  long n = quick ? 100000 : 500000;
  enum { MAX_REPS = 21 };
  int reps = quick ? 9 : MAX_REPS;
  double ours[MAX_REPS], sem[MAX_REPS], ratio[MAX_REPS];
  time_pairs(h, n); /* warm both */
  time_sem_pairs(s, n);
  for (int r = 0; r < reps; r++) { /* interleaved: same conditions for both */
    if (r % 2) {
      sem[r] = time_sem_pairs(s, n);
      ours[r] = time_pairs(h, n);
    } else {
      ours[r] = time_pairs(h, n);
      sem[r] = time_sem_pairs(s, n);
    }
    ratio[r] = ours[r] / sem[r];
  }
  double o = median(ours, reps), b = median(sem, reps);
  spread q = spread_of(ratio, reps);
  printf("uncontended acquire+release     %6.1f ns   sem_trywait+sem_post %5.1f ns"
         "   ratio %.2fx (IQR %.2f-%.2f, %d rounds)   (goal <= 50 ns; aim <= 3x)\n", o, b,
         q.p50, q.p25, q.p75, reps);

  /* Flat from 1 to 1000 slots held: every round times each level once
  ** (taking or giving back the other slots between them, in an order that
  ** rotates), and each level's figure is the median over rounds of its
  ** ratio to the 0-held time of the same round, so that a drifting
  ** machine does not pass for a trend. */
  enum { LEVELS = 4 };
  int held_counts[LEVELS] = {0, 10, 100, 1000};
  dbpool_holder **others = calloc(1000, sizeof *others);
  for (int i = 0; i < 1000; i++)
    if ((rc = dbpool_holder_new(c, &others[i]))) die("holder", rc);
  double t[LEVELS][MAX_REPS], rel[LEVELS][MAX_REPS];
  int have = 0;
  for (int r = 0; r < reps; r++) {
    for (int k = 0; k < LEVELS; k++) {
      int level = (r % 2) ? LEVELS - 1 - k : k; /* up, then down */
      while (have < held_counts[level])
        if ((rc = dbpool_holder_acquire(others[have++], 0))) die("acquire", rc);
      while (have > held_counts[level]) dbpool_holder_release(others[--have]);
      t[level][r] = time_pairs(h, n);
    }
    for (int k = 0; k < LEVELS; k++) rel[k][r] = t[k][r] / t[0][r];
  }
  printf("with other slots held (ratio to 0 held, same round; median and IQR of %d):", reps);
  double base = median(t[0], reps);
  for (int k = 1; k < LEVELS; k++) {
    spread qk = spread_of(rel[k], reps);
    printf("  %d: %.2fx (%.2f-%.2f)", held_counts[k], qk.p50, qk.p25, qk.p75);
  }
  printf("   0 held %.1f ns   (goal: flat within 10%%)\n", base);
  for (int i = 0; i < 1000; i++) dbpool_holder_free(others[i]);
  free(others);
  dbpool_holder_free(h);
  dbpool_coord_close(c);
}

/* ----------------------------------------------- 3: fairness, handoffs */

enum { NPROC = 64 };

typedef struct {
  _Atomic int go, stop, ready;
  struct {
    long count;
    double max_wait_ns;
  } proc[NPROC];
} fair_shared;

typedef struct {
  const char *name;
  double jain, longest_ms, per_sec, min_share;
} fair_result;

static void hold_1us(void)
{
  double end = now_ns() + 1000;
  while (now_ns() < end) {
  }
}

static int sysv_op(int semid, int delta)
{
  struct sembuf op = {0, (short)delta, SEM_UNDO};
  int rc;
  do rc = semop(semid, &op, 1); while (rc < 0 && errno == EINTR);
  return rc;
}

static fair_result run_fairness(int use_sysv, double seconds)
{
  fair_shared *sh = shared(sizeof *sh);
  int semid = -1;
  if (use_sysv) {
    semid = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    semctl(semid, 0, SETVAL, 1);
  } else {
    dbpool_coord *c;
    int rc = dbpool_coord_open(db_path, 0, &c);
    if (rc) die("open", rc);
    if ((rc = dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1))) die("set", rc);
    dbpool_coord_close(c);
  }
  pid_t pids[NPROC];
  for (int i = 0; i < NPROC; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      dbpool_coord *c = NULL;
      dbpool_holder *h = NULL;
      if (!use_sysv) {
        if (dbpool_coord_open(db_path, 0, &c) || dbpool_holder_new(c, &h)) _exit(3);
      }
      atomic_fetch_add(&sh->ready, 1);
      while (!atomic_load(&sh->go)) usleep(100);
      long count = 0;
      double maxw = 0;
      while (!atomic_load(&sh->stop)) {
        double t0 = now_ns();
        int rc = use_sysv ? sysv_op(semid, -1) : dbpool_holder_acquire(h, -1);
        if (rc) _exit(4);
        double w = now_ns() - t0;
        if (w > maxw) maxw = w;
        count++;
        hold_1us();
        if (use_sysv) sysv_op(semid, 1); else dbpool_holder_release(h);
      }
      sh->proc[i].count = count;
      sh->proc[i].max_wait_ns = maxw;
      if (h) dbpool_holder_free(h);
      if (c) dbpool_coord_close(c);
      _exit(0);
    }
  }
  while (atomic_load(&sh->ready) < NPROC) usleep(1000);
  atomic_store(&sh->go, 1);
  usleep((useconds_t)(seconds * 1e6));
  atomic_store(&sh->stop, 1);
  for (int i = 0; i < NPROC; i++) waitpid(pids[i], NULL, 0);
  if (use_sysv) semctl(semid, 0, IPC_RMID);

  double sum = 0, sq = 0, longest = 0, minc = 1e18;
  for (int i = 0; i < NPROC; i++) {
    double x = (double)sh->proc[i].count;
    sum += x;
    sq += x * x;
    if (x < minc) minc = x;
    if (sh->proc[i].max_wait_ns > longest) longest = sh->proc[i].max_wait_ns;
  }
  fair_result r = {use_sysv ? "SysV semop SEM_UNDO" : "dbpool", sq > 0 ? sum * sum / (NPROC * sq) : 0,
                   longest / 1e6, sum / seconds, sum > 0 ? minc / (sum / NPROC) : 0};
  munmap(sh, sizeof *sh);
  return r;
}

/* Alternating rounds, so that both see the same drifting machine; the
** figures of the median round (by handoffs/s) of each. */
static void bench_fairness(void)
{
  enum { ROUNDS = 3 };
  double secs = quick ? 0.5 : 1.0;
  fair_result ours[ROUNDS], sysv[ROUNDS];
  for (int r = 0; r < ROUNDS; r++) {
    ours[r] = run_fairness(0, secs);
    sysv[r] = run_fairness(1, secs);
  }
  fair_result *m[2] = {NULL, NULL};
  for (int k = 0; k < 2; k++) {
    fair_result *rs = k ? sysv : ours;
    for (int i = 0; i < ROUNDS; i++) { /* the median by handoffs/s */
      int below = 0;
      for (int j = 0; j < ROUNDS; j++) below += rs[j].per_sec < rs[i].per_sec;
      if (below == ROUNDS / 2) m[k] = &rs[i];
    }
    if (!m[k]) m[k] = &rs[0];
  }
  printf("64 processes, limit 1, hold 1 us (median of %d alternating rounds of %.1f s):\n",
         ROUNDS, secs);
  for (int k = 0; k < 2; k++)
    printf("  %-20s Jain %.4f  least share %.2f  longest wait %6.1f ms  handoffs/s %8.0f\n",
           m[k]->name, m[k]->jain, m[k]->min_share, m[k]->longest_ms, m[k]->per_sec);
  double ratio[ROUNDS];
  for (int r = 0; r < ROUNDS; r++) ratio[r] = ours[r].per_sec / sysv[r].per_sec;
  double lo = quantile(ratio, ROUNDS, 0), hi = quantile(ratio, ROUNDS, 1);
  printf("  handoffs/s ratio dbpool/SysV %.2fx (rounds %.2f-%.2f)   (goal: Jain >= 0.99, longest"
         " <= 15 ms, ratio >= 1)\n", m[0]->per_sec / m[1]->per_sec, lo, hi);
}

/* ------------------------------------------------------------ 4: reclaim */

typedef struct {
  _Atomic int holder_ready;
  _Atomic int waiter_waiting;
  _Atomic double got_ns;
} reclaim_shared;

static void bench_reclaim(void)
{
  int trials = quick ? 15 : 60;
  double *lat = calloc((size_t)trials, sizeof *lat);
  reclaim_shared *sh = shared(sizeof *sh);
  dbpool_coord *c;
  int rc = dbpool_coord_open(db_path, 0, &c);
  if (rc) die("open", rc);
  if ((rc = dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1))) die("set", rc);
  for (int t = 0; t < trials; t++) {
    atomic_store(&sh->holder_ready, 0);
    atomic_store(&sh->got_ns, 0);
    pid_t holder = fork();
    if (holder == 0) {
      dbpool_coord *cc;
      dbpool_holder *h;
      if (dbpool_coord_open(db_path, 0, &cc) || dbpool_holder_new(cc, &h) ||
          dbpool_holder_acquire(h, -1))
        _exit(3);
      atomic_store(&sh->holder_ready, 1);
      for (;;) pause();
    }
    while (!atomic_load(&sh->holder_ready)) usleep(100);
    pid_t waiter = fork();
    if (waiter == 0) {
      dbpool_coord *cc;
      dbpool_holder *h;
      if (dbpool_coord_open(db_path, 0, &cc) || dbpool_holder_new(cc, &h)) _exit(3);
      if (dbpool_holder_acquire(h, 10000)) _exit(4);
      atomic_store(&sh->got_ns, now_ns());
      dbpool_holder_free(h);
      _exit(0);
    }
    while (dbp_coord_waiting(c) < 1) usleep(100);
    usleep((useconds_t)(rand() % 30000)); /* a random phase of the poll */
    double t0 = now_ns();
    kill(holder, SIGKILL);
    waitpid(waiter, NULL, 0);
    waitpid(holder, NULL, 0);
    lat[t] = (atomic_load(&sh->got_ns) - t0) / 1e6;
  }
  qsort(lat, (size_t)trials, sizeof *lat, cmp_double);
  printf("reclaim after SIGKILL of a holder (%d trials): p50 %.1f ms  p99 %.1f ms  max %.1f ms"
         "   (goal: p99 <= 100 ms)\n", trials, lat[trials / 2],
         lat[(int)ceil(trials * 0.99) - 1], lat[trials - 1]);
  dbpool_coord_close(c);
  free(lat);
}

int main(int argc, char **argv)
{
  quick = argc > 1 && strcmp(argv[1], "quick") == 0;
  char ns[64];
  snprintf(ns, sizeof ns, "bench%d", (int)getpid());
  setenv("DBPOOL_NAMESPACE", ns, 1);
  char dir[] = "/tmp/dbpool-bench-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  snprintf(db_path, sizeof db_path, "%s/bench.db", dir);
  close(open(db_path, O_CREAT | O_RDWR, 0644));

  if (argc > 2 && strcmp(argv[1], "count") == 0) { /* for callgrind (bench/run.sh) */
    dbpool_coord *c;
    dbpool_holder *h;
    sem_t *s = shared(sizeof *s);
    sem_init(s, 1, 1);
    if (dbpool_coord_open(db_path, 0, &c) || dbpool_holder_new(c, &h)) return 1;
    if (strcmp(argv[2], "ours") == 0) time_pairs(h, 100000);
    else time_sem_pairs(s, 100000);
    dbpool_holder_free(h);
    dbpool_coord_close(c);
    dbpool_coord_remove(db_path, NULL, 1);
    unlink(db_path);
    rmdir(dir);
    return 0;
  }
  printf("== coordinator (%s)\n", quick ? "quick" : "full");
  const char *only = getenv("DBPOOL_BENCH_ONLY"); /* fast, fairness, sysv, reclaim */
  if (!only || !strcmp(only, "fast")) bench_fast_path();
  if (!only) bench_fairness();
  if (only && (!strcmp(only, "fairness") || !strcmp(only, "sysv"))) {
    /* one side alone, for a profiler: perf stat, strace -c */
    fair_result r = run_fairness(!strcmp(only, "sysv"), quick ? 1.0 : 3.0);
    printf("%s: handoffs/s %.0f  Jain %.4f  longest wait %.1f ms\n", r.name, r.per_sec,
           r.jain, r.longest_ms);
  }
  if (!only || !strcmp(only, "reclaim")) bench_reclaim();

  dbpool_coord_remove(db_path, NULL, 1);
  unlink(db_path);
  rmdir(dir);
  return 0;
}
