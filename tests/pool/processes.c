/*
** processes.c -- pools across fork() and in several processes at once.
**
** Checks:
**   - fork: in a child, every call on a pool inherited from the parent
**     (acquire, acquire_timeout, release, get_stats, get_host_stats, close)
**     returns SQLITE_MISUSE with a message; the child can open a pool of
**     its own on the same database and use it; the parent's connections and
**     slots are untouched (host active and the parent's statistics are as
**     before) and the parent keeps using its pool;
**   - two processes, each with a pool of max_size 8, under a host cap of 10,
**     both acquiring (two connections at a time), using and releasing for a
**     few seconds: the number of SQLite connections open on the host, as
**     counted by a VFS shim in shared memory (incremented inside
**     sqlite3_open_v2, decremented inside sqlite3_close), never exceeds 10,
**     and neither process starves;
**   - idle slots flow to where they are needed: process A opens 8
**     connections and keeps them idle; process B then needs 8 at once
**     (8 threads, generous timeout): B gets all 8 because A gives its idle
**     slots back (A's closed_given_back), still never more than 10 open.
*/
#include <pthread.h>

#include "poolutil.h"

#define HOST_CAP 10
#define POOL_MAX 8


static pid_t xfork(void)
{
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) c_fail = 0;
  return pid;
}

/* ------------------------------------------------------------------ fork */

typedef struct {
  int rc_acquire, rc_acquire0, rc_release, rc_stats, rc_host_stats, rc_close;
  int rc_own_open, rc_own_acquire, rc_own_release, rc_own_close;
  char msg_acquire[256], msg_release[256], msg_close[256], msg_stats[256];
  _Atomic int done;
} fork_shared;

TEST(inherited_pool_is_refused_in_child)
{
  const char *path = tu_db("fork.db");
  dbpool_config cfg = pu_config(3);
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a, *b;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK); /* a out, b idle */
  dbpool_stats st0 = pu_stats(p);
  dbpool_host_stats hs0 = pu_host(path);
  CHECK_CMP(hs0.active, ==, 2);

  fork_shared *S = tu_shared(sizeof *S);
  memset(S, 0, sizeof *S);
  pid_t pid = xfork();
  if (pid == 0) {
    alarm(tu_sec(20));
    sqlite3 *x = NULL;
    S->rc_acquire = dbpool_acquire(p, &x);
    snprintf(S->msg_acquire, sizeof S->msg_acquire, "%s", dbpool_errmsg(NULL));
    S->rc_acquire0 = dbpool_acquire_timeout(p, &x, 0);
    S->rc_release = dbpool_release(p, a);
    snprintf(S->msg_release, sizeof S->msg_release, "%s", dbpool_errmsg(NULL));
    dbpool_stats st;
    DBPOOL_INIT(&st);
    dbpool_host_stats hs;
    DBPOOL_INIT(&hs);
    dbpool_errmsg(NULL);
    S->rc_stats = dbpool_get_stats(p, &st);
    snprintf(S->msg_stats, sizeof S->msg_stats, "%s", dbpool_errmsg(NULL));
    S->rc_host_stats = dbpool_get_host_stats(p, &hs);
    S->rc_close = dbpool_close(p);
    snprintf(S->msg_close, sizeof S->msg_close, "%s", dbpool_errmsg(NULL));
    /* A pool of its own works. (Not under the sanitizers: TSan cannot
    ** create threads in the child of a process that had threads at fork
    ** time, and gcc 12's ASan allocator can be inherited locked by such a
    ** child, so the child's new housekeeping thread hangs in malloc.) */
    dbpool *mine = NULL;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    S->rc_own_open = S->rc_own_acquire = S->rc_own_release = S->rc_own_close = SQLITE_OK;
#else
    S->rc_own_open = dbpool_open(path, &cfg, &mine);
#endif
    if (mine) {
      S->rc_own_acquire = dbpool_acquire(mine, &x);
      if (x) S->rc_own_release = dbpool_release(mine, x);
      S->rc_own_close = dbpool_close(mine);
    }
    atomic_store(&S->done, 1);
    _exit(0);
  }
  CHECK_CMP(tu_wait_child(pid, 15000), ==, 0);
  CHECK(atomic_load(&S->done) == 1);
  CHECK_CODE(S->rc_acquire, SQLITE_MISUSE);
  CHECK_HAS(S->msg_acquire, "fork");
  CHECK_CODE(S->rc_acquire0, SQLITE_MISUSE);
  CHECK_CODE(S->rc_release, SQLITE_MISUSE);
  CHECK_HAS(S->msg_release, "fork");
  CHECK_CODE(S->rc_close, SQLITE_MISUSE);
  CHECK_HAS(S->msg_close, "fork");
  /* "refuses every call in the child" (dbpool.h) */
  CHECK_CODE(S->rc_stats, SQLITE_MISUSE);
  CHECK_CODE(S->rc_host_stats, SQLITE_MISUSE);
  CHECK_CODE(S->rc_own_open, SQLITE_OK);
  CHECK_CODE(S->rc_own_acquire, SQLITE_OK);
  CHECK_CODE(S->rc_own_release, SQLITE_OK);
  CHECK_CODE(S->rc_own_close, SQLITE_OK);

  /* The parent's side is untouched. */
  dbpool_host_stats hs = pu_host(path);
  CHECK_CMP(hs.active, ==, 2);
  CHECK_CMP(hs.idle, ==, 1);
  dbpool_stats st = pu_stats(p);
  CHECK(st.active == st0.active && st.idle == st0.idle && st.total == st0.total);
  CHECK(st.checkouts == st0.checkouts && st.misuses == st0.misuses && st.closed == 0);
  CHECK(sqlite3_get_autocommit(a) == 1);
  CHECK_SQ(pu_exec(a, "SELECT 1"), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);
  CHECK_CMP(pu_stats(p).created, ==, 2);
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 0);
  munmap(S, sizeof *S);
}

/* ---------------------------------------------------- two processes */

typedef struct {
  pu_counts counts;
  _Atomic int ready[2], go, a_ready, b_done;
  _Atomic long checkouts[2], busy[2], errors[2];
  _Atomic long stat_checkouts[2];
  _Atomic long given_back;
  _Atomic int b_got;
  double b_ms;
  char err[2][256];
} proc_shared;

static proc_shared *P;

typedef struct {
  dbpool *p;
  int who;
  double end;
  long ok, busy, errors;
  char err[256];
} worker_arg;

static void *worker(void *arg)
{
  worker_arg *w = arg;
  while (tu_now_ms() < w->end) {
    sqlite3 *db[2] = {NULL, NULL};
    int n = 0;
    for (int k = 0; k < 2; k++) {
      int rc = dbpool_acquire_timeout(w->p, &db[k], 3000);
      if (rc == SQLITE_OK) {
        n++;
        w->ok++;
      } else if (rc == SQLITE_BUSY) {
        w->busy++;
        break;
      } else {
        if (!w->errors++)
          snprintf(w->err, sizeof w->err, "acquire %d: %s", rc, dbpool_errmsg(w->p));
        break;
      }
    }
    for (int k = 0; k < n; k++) {
      if (pu_int(db[k], "SELECT count(*) FROM t") != 3 && !w->errors++)
        snprintf(w->err, sizeof w->err, "query: %s", sqlite3_errmsg(db[k]));
    }
    tu_sleep_ms(1);
    for (int k = 0; k < n; k++) {
      int rc = dbpool_release(w->p, db[k]);
      if (rc != SQLITE_OK && !w->errors++)
        snprintf(w->err, sizeof w->err, "release %d: %s", rc, dbpool_errmsg(w->p));
    }
  }
  return NULL;
}

static void contend_child(const char *path, int who)
{
  alarm(tu_sec(40));
  dbpool_config cfg = pu_config(POOL_MAX);
  cfg.acquire_timeout_ms = 3000;
  cfg.vfs = "pu_count";
  dbpool *p = NULL;
  CCHECK(dbpool_open(path, &cfg, &p) == SQLITE_OK);
  if (!p) CHILD_EXIT();
  atomic_store(&P->ready[who], 1);
  double end = tu_now_ms() + tu_ms(10000);
  while (!atomic_load(&P->go) && tu_now_ms() < end) tu_sleep_ms(1);
  enum { NTH = 4 };
  pthread_t th[NTH];
  worker_arg args[NTH];
  double stop = tu_now_ms() + 3000;
  for (int i = 0; i < NTH; i++) {
    args[i] = (worker_arg){.p = p, .who = who, .end = stop};
    CCHECK(pthread_create(&th[i], NULL, worker, &args[i]) == 0);
  }
  long ok = 0, busy = 0, errors = 0;
  for (int i = 0; i < NTH; i++) {
    pthread_join(th[i], NULL);
    ok += args[i].ok;
    busy += args[i].busy;
    errors += args[i].errors;
    if (args[i].errors) snprintf(P->err[who], sizeof P->err[who], "%s", args[i].err);
  }
  atomic_store(&P->checkouts[who], ok);
  atomic_store(&P->busy[who], busy);
  atomic_store(&P->errors[who], errors);
  dbpool_stats st;
  DBPOOL_INIT(&st);
  CCHECK(dbpool_get_stats(p, &st) == SQLITE_OK);
  atomic_store(&P->stat_checkouts[who], (long)st.checkouts);
  CCHECK(st.checkouts == (uint64_t)ok);
  CCHECK(st.active == 0 && st.waiting == 0);
  CCHECK(st.total <= POOL_MAX);
  CCHECK(dbpool_close(p) == SQLITE_OK);
  CHILD_EXIT();
}

static void make_db(const char *path)
{
  sqlite3 *own = pu_own(path);
  pu_exec(own, "CREATE TABLE t(x); INSERT INTO t VALUES(1),(2),(3)");
  sqlite3_close(own);
}

TEST(two_processes_share_the_cap)
{
  const char *path = tu_db("two.db");
  make_db(path);
  memset(P, 0, sizeof *P);
  atomic_store(&P->counts.limit, HOST_CAP);
  pu_count_vfs_install(&P->counts);
  pu_set_host_cap(path, HOST_CAP);

  pid_t pid[2];
  for (int who = 0; who < 2; who++) {
    pid[who] = xfork();
    if (pid[who] == 0) contend_child(path, who);
  }
  CHECK(pu_wait(atomic_load(&P->ready[0]) && atomic_load(&P->ready[1]), 10000));
  atomic_store(&P->go, 1);
  /* Sample while they run: the host's own view, and the shim's. */
  unsigned max_active = 0;
  int max_open = 0, samples = 0;
  double end = tu_now_ms() + 3500;
  while (tu_now_ms() < end) {
    dbpool_host_stats hs = pu_host(path);
    if (hs.active > max_active) max_active = hs.active;
    int o = atomic_load(&P->counts.open_now);
    if (o > max_open) max_open = o;
    samples++;
    tu_sleep_ms(5);
  }
  for (int who = 0; who < 2; who++) CHECK_CMP(tu_wait_child(pid[who], 20000), ==, 0);

  long c0 = atomic_load(&P->checkouts[0]), c1 = atomic_load(&P->checkouts[1]);
  printf("  two processes: checkouts %ld / %ld, busy %ld / %ld, peak open %d, "
         "peak host active %u (%d samples)\n", c0, c1, atomic_load(&P->busy[0]),
         atomic_load(&P->busy[1]), atomic_load(&P->counts.peak), max_active, samples);
  for (int who = 0; who < 2; who++) {
    CHECK_CMP(atomic_load(&P->errors[who]), ==, 0);
    if (atomic_load(&P->errors[who])) fprintf(stderr, "  process %d: %s\n", who, P->err[who]);
  }
  CHECK_CMP(atomic_load(&P->counts.over), ==, 0);
  CHECK_CMP(atomic_load(&P->counts.peak), <=, HOST_CAP);
  CHECK_CMP(max_open, <=, HOST_CAP);
  CHECK_CMP(max_active, <=, HOST_CAP);
  /* The cap was actually reached (the demand is 16), so it was tested. */
  CHECK_CMP(atomic_load(&P->counts.peak), >=, HOST_CAP - 1);
  /* Neither starves. */
  CHECK_CMP(c0, >=, 100);
  CHECK_CMP(c1, >=, 100);
  CHECK_CMP(c0 * 5, >=, c1);
  CHECK_CMP(c1 * 5, >=, c0);
  CHECK_CMP(atomic_load(&P->counts.open_now), ==, 0);
  dbpool_host_stats hs = pu_host(path);
  CHECK(hs.active == 0 && hs.waiting == 0);
}

/* A: opens POOL_MAX connections and keeps them idle until B is done. */
static void idle_child(const char *path)
{
  alarm(tu_sec(40));
  dbpool_config cfg = pu_config(POOL_MAX);
  cfg.vfs = "pu_count";
  dbpool *p = NULL;
  CCHECK(dbpool_open(path, &cfg, &p) == SQLITE_OK);
  if (!p) CHILD_EXIT();
  sqlite3 *db[POOL_MAX];
  for (int i = 0; i < POOL_MAX; i++) CCHECK(dbpool_acquire(p, &db[i]) == SQLITE_OK);
  for (int i = 0; i < POOL_MAX; i++) CCHECK(dbpool_release(p, db[i]) == SQLITE_OK);
  dbpool_stats st;
  DBPOOL_INIT(&st);
  dbpool_get_stats(p, &st);
  CCHECK(st.idle == POOL_MAX);
  atomic_store(&P->a_ready, 1);
  double end = tu_now_ms() + tu_ms(30000);
  while (!atomic_load(&P->b_done) && tu_now_ms() < end) tu_sleep_ms(2);
  dbpool_get_stats(p, &st);
  atomic_store(&P->given_back, (long)st.closed_given_back);
  CCHECK(dbpool_close(p) == SQLITE_OK);
  CHILD_EXIT();
}

typedef struct {
  dbpool *p;
  int rc;
  _Atomic int *got;
} need_arg;

static void *need_one(void *arg)
{
  need_arg *n = arg;
  sqlite3 *db = NULL;
  n->rc = dbpool_acquire_timeout(n->p, &db, (int)tu_ms(15000));
  atomic_fetch_add(n->got, 1);
  /* Hold until everyone has an answer, so that all 8 are out at once. */
  double end = tu_now_ms() + tu_ms(20000);
  while (atomic_load(n->got) < POOL_MAX && tu_now_ms() < end) tu_sleep_ms(1);
  if (db) dbpool_release(n->p, db);
  return NULL;
}

/* B: needs POOL_MAX connections at once. */
static void needy_child(const char *path)
{
  alarm(tu_sec(40));
  dbpool_config cfg = pu_config(POOL_MAX);
  cfg.vfs = "pu_count";
  dbpool *p = NULL;
  CCHECK(dbpool_open(path, &cfg, &p) == SQLITE_OK);
  if (!p) CHILD_EXIT();
  pthread_t th[POOL_MAX];
  need_arg args[POOL_MAX];
  _Atomic int got = 0;
  double t0 = tu_now_ms();
  for (int i = 0; i < POOL_MAX; i++) {
    args[i] = (need_arg){.p = p, .got = &got};
    CCHECK(pthread_create(&th[i], NULL, need_one, &args[i]) == 0);
  }
  int ok = 0;
  for (int i = 0; i < POOL_MAX; i++) {
    pthread_join(th[i], NULL);
    if (args[i].rc == SQLITE_OK) ok++;
  }
  P->b_ms = tu_now_ms() - t0;
  atomic_store(&P->b_got, ok);
  CCHECK(dbpool_close(p) == SQLITE_OK);
  atomic_store(&P->b_done, 1);
  CHILD_EXIT();
}

TEST(idle_slots_flow_to_the_needy_process)
{
  const char *path = tu_db("flow.db");
  memset(P, 0, sizeof *P);
  atomic_store(&P->counts.limit, HOST_CAP);
  pu_count_vfs_install(&P->counts);
  pu_set_host_cap(path, HOST_CAP);

  pid_t a = xfork();
  if (a == 0) idle_child(path);
  CHECK(pu_wait(atomic_load(&P->a_ready), 10000));
  dbpool_host_stats hs = pu_host(path);
  CHECK(hs.active == POOL_MAX && hs.idle == POOL_MAX);
  pid_t b = xfork();
  if (b == 0) needy_child(path);
  CHECK_CMP(tu_wait_child(b, 30000), ==, 0);
  atomic_store(&P->b_done, 1);
  CHECK_CMP(tu_wait_child(a, 30000), ==, 0);
  printf("  flow: B got %d of %d in %.0f ms; A gave back %ld\n", atomic_load(&P->b_got),
         POOL_MAX, P->b_ms, atomic_load(&P->given_back));
  CHECK_CMP(atomic_load(&P->b_got), ==, POOL_MAX);
  CHECK_CMP(atomic_load(&P->given_back), >=, POOL_MAX - (HOST_CAP - POOL_MAX));
  CHECK_CMP(atomic_load(&P->counts.over), ==, 0);
  CHECK_CMP(atomic_load(&P->counts.peak), <=, HOST_CAP);
  hs = pu_host(path);
  CHECK(hs.active == 0 && hs.waiting == 0);
}

int main(void)
{
  tu_init("pool-processes");
  alarm(tu_sec(150));
  P = tu_shared(sizeof *P);
  RUN(inherited_pool_is_refused_in_child);
  RUN(two_processes_share_the_cap);
  RUN(idle_slots_flow_to_the_needy_process);
  return tu_finish();
}
