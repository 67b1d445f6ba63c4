/*
** lifecycle.c -- creating, keeping and removing pools while processes race.
**
** Checks:
**   - atomic creation (create.c: the segment is initialised completely
**     before it is linked under its name, and only one link can win): 16
**     processes released together by a barrier all open the same new
**     database, each with a DIFFERENT DBPOOL_MAX_CONNECTIONS in its
**     environment. Nobody sees an error, exactly one segment exists
**     afterwards, and everyone sees the same segment name, creation time and
**     settings -- the winner's. A loser that had made and used its own
**     segment, or that saw a half-initialised one, would see its own value
**     or garbage. While they acquire and release, a test-owned flag array
**     counts holders at once: never above the limit;
**   - settings outlive processes: set in one process, which exits; a new
**     process (whose environment asks for other values) sees them;
**   - removal racing users: one process loops dbpool_coord_remove(force=0)
**     while others loop open / holder_new / acquire / release / free /
**     close. Removal may only succeed while no process is registered
**     (has holders), and a process that mapped the removed segment must be
**     sent to the new one (holder_new -> -ESTALE; it reopens): so every
**     holder_new returns 0 or -ESTALE, every acquire 0, and the number of
**     holders at once, counted in test-owned shared memory, never exceeds
**     max_connections. Removals must actually have happened;
**   - the same two races made deterministic: this program replaces unlink()
**     (the library is linked statically, so its calls land here) with one
**     that can be made slow in one chosen process. A process that decided to
**     unlink a removed segment's name and is then delayed must not, when it
**     finally unlinks, take the name of a NEW pool created meanwhile
**     (which would let a third pool be created: two pools in use at once):
**     (a) two openers both find a segment marked removed whose remover
**     died before unlinking it; (b) a remover is slow to unlink while an
**     opener comes along.
*/
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "testutil.h"
#include "coordinator/layout.h"

#define NPROC 16
#define MAXP 32

typedef struct {
  _Atomic int arrived;   /* barrier */
  _Atomic int go;
  _Atomic int stop;
  /* What each process saw. */
  int rc_open[MAXP], rc_holder[MAXP], rc_acquire[MAXP];
  int64_t max[MAXP], timeout[MAXP], created[MAXP];
  char name[MAXP][96];
  /* Holders at once. */
  _Atomic uint64_t held;  /* bit i: holder i holds (one word: an atomic snapshot) */
  _Atomic int over;       /* times the count exceeded the limit */
  _Atomic int max_seen;
  /* Remove race counters. */
  _Atomic long removed, busy, enoent, remove_other;
  _Atomic long opens, estale_holder, estale_acquire, acquired;
  _Atomic long bad_open, bad_holder, bad_acquire, bad_release;
  int first_bad_rc;
  char first_bad_msg[256];
} shared_t;

static shared_t *S;

/* unlink() with an optional delay for pool segments, in this process. */
static double unlink_delay_ms;

int unlink(const char *path)
{
  if (unlink_delay_ms > 0 && strncmp(path, "/dev/shm/dbpool.", 16) == 0)
    tu_sleep_ms(unlink_delay_ms);
  return (int)syscall(SYS_unlink, path);
}

static void reset(void) { memset(S, 0, sizeof *S); }

static void barrier(int n)
{
  atomic_fetch_add(&S->arrived, 1);
  double end = tu_now_ms() + tu_ms(20000);
  while (atomic_load(&S->arrived) < n && tu_now_ms() < end) {
  }
}

/* Mark holder id as holding; count holders at once against limit. The
** holders are bits of one word, set with one atomic OR that returns the
** word as it was: the count is a true snapshot (a scan of separate flags
** could count a releaser and its successor together and report a
** violation that never happened). */
static void hold_flag(int id, int limit)
{
  uint64_t was = atomic_fetch_or(&S->held, UINT64_C(1) << id);
  int n = __builtin_popcountll(was | UINT64_C(1) << id);
  if (n > limit) atomic_fetch_add(&S->over, 1);
  int m = atomic_load(&S->max_seen);
  while (n > m && !atomic_compare_exchange_weak(&S->max_seen, &m, n)) {
  }
}

static void unhold_flag(int id)
{
  atomic_fetch_and(&S->held, ~(UINT64_C(1) << id));
}

static void note_bad(_Atomic long *counter, int rc)
{
  if (atomic_fetch_add(counter, 1) == 0 && S->first_bad_rc == 0) {
    S->first_bad_rc = rc;
    snprintf(S->first_bad_msg, sizeof S->first_bad_msg, "%s", dbpool_last_error());
  }
}

/* -------------------------------------------------------- atomic creation */

TEST(concurrent_creation_makes_one_pool)
{
  for (int round = 0; round < 12; round++) {
    char dbname[64];
    snprintf(dbname, sizeof dbname, "create-%d.db", round);
    const char *db = tu_db(dbname);
    reset();
    int before = tu_count_segments();
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
      pids[i] = fork();
      if (pids[i] < 0) exit(2);
      if (pids[i] == 0) {
        alarm(tu_sec(30));
        char v[16];
        snprintf(v, sizeof v, "%d", 2 + i); /* a different limit each */
        setenv("DBPOOL_MAX_CONNECTIONS", v, 1);
        snprintf(v, sizeof v, "%d", 1000 + i);
        setenv("DBPOOL_ACQUIRE_TIMEOUT_MS", v, 1);
        barrier(NPROC);
        dbpool_coord *c = NULL;
        dbpool_holder *h = NULL;
        dbpool_host_stats st;
        DBPOOL_INIT(&st);
        S->rc_open[i] = dbpool_coord_open(db, 0, &c);
        S->rc_holder[i] = S->rc_acquire[i] = 1;
        if (c) {
          dbpool_coord_get(c, DBPOOL_SETTING_MAX_CONNECTIONS, &S->max[i]);
          dbpool_coord_get(c, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, &S->timeout[i]);
          if (dbpool_coord_stats(c, &st) == 0) S->created[i] = st.created_at_ns;
          snprintf(S->name[i], sizeof S->name[i], "%s", dbpool_coord_segment_name(c));
          S->rc_holder[i] = dbpool_holder_new(c, &h);
        }
        if (h) {
          for (int k = 0; k < 20; k++) {
            int rc = dbpool_holder_acquire(h, (int)tu_ms(10000));
            if (rc != 0) {
              S->rc_acquire[i] = rc;
              break;
            }
            hold_flag(i, (int)S->max[i]);
            sched_yield();
            unhold_flag(i);
            if (dbpool_holder_release(h) != 0) note_bad(&S->bad_release, -1);
            S->rc_acquire[i] = 0;
          }
          dbpool_holder_free(h);
        }
        dbpool_coord_close(c);
        _exit(0);
      }
    }
    for (int i = 0; i < NPROC; i++) CHECK_RC(tu_wait_child(pids[i], 30000), 0);
    CHECK_RC(tu_count_segments(), before + 1);
    int64_t max0 = S->max[0];
    CHECK(max0 >= 2 && max0 < 2 + NPROC);
    int winner = (int)max0 - 2;
    for (int i = 0; i < NPROC; i++) {
      CHECK_RC(S->rc_open[i], 0);
      CHECK_RC(S->rc_holder[i], 0);
      CHECK_RC(S->rc_acquire[i], 0);
      CHECK(S->max[i] == max0);
      CHECK(S->timeout[i] == 1000 + winner); /* both settings: the winner's */
      CHECK(S->created[i] == S->created[0] && S->created[0] > 0);
      CHECK_STR(S->name[i], S->name[0]);
    }
    CHECK_RC(atomic_load(&S->over), 0);
    CHECK(atomic_load(&S->max_seen) <= max0);
    CHECK_RC(atomic_load(&S->bad_release), 0);
    /* The pool is as the winner made it, and nothing is left held. */
    dbpool_coord *c;
    CHECK_RC(dbpool_coord_open(db, DBPOOL_OPEN_NOCREATE, &c), 0);
    dbpool_host_stats st;
    DBPOOL_INIT(&st);
    CHECK_RC(dbpool_coord_stats(c, &st), 0);
    CHECK(st.max_connections == max0 && st.active == 0 && st.waiting == 0);
    CHECK(st.total_acquired == NPROC * 20 && st.processes == 0);
    dbpool_coord_close(c);
    CHECK_RC(dbpool_coord_remove(db, NULL, 0), 0);
  }
}

/* --------------------------------------------------------------- settings */

static int run_child(int (*fn)(const char *), const char *db)
{
  pid_t pid = fork();
  if (pid < 0) exit(2);
  if (pid == 0) {
    alarm(tu_sec(20));
    _exit(fn(db));
  }
  return tu_wait_child(pid, 20000);
}

static int set_settings(const char *db)
{
  dbpool_coord *c;
  if (dbpool_coord_open(db, 0, &c) != 0) return 10;
  if (dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 4) != 0) return 11;
  if (dbpool_coord_set(c, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, 1234) != 0) return 12;
  /* Attached with a holder when exiting: its record is reclaimed later. */
  dbpool_holder *h;
  if (dbpool_holder_new(c, &h) != 0 || dbpool_holder_acquire(h, 0) != 0) return 13;
  return 0; /* exit without closing */
}

static int see_settings(const char *db)
{
  setenv("DBPOOL_MAX_CONNECTIONS", "9", 1); /* only for new pools */
  setenv("DBPOOL_ACQUIRE_TIMEOUT_MS", "99", 1);
  dbpool_coord *c;
  int64_t max = 0, timeout = 0, paused = -1;
  if (dbpool_coord_open(db, 0, &c) != 0) return 20;
  dbpool_coord_get(c, DBPOOL_SETTING_MAX_CONNECTIONS, &max);
  dbpool_coord_get(c, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, &timeout);
  dbpool_coord_get(c, DBPOOL_SETTING_PAUSED, &paused);
  if (max != 4) return 21;
  if (timeout != 1234) return 22;
  if (paused != 0) return 23;
  /* The exited setter's slot is reclaimed; 4 slots are available. */
  dbpool_holder *h[5];
  for (int i = 0; i < 5; i++)
    if (dbpool_holder_new(c, &h[i]) != 0) return 24;
  for (int i = 0; i < 4; i++)
    if (dbpool_holder_acquire(h[i], (int)tu_ms(5000)) != 0) return 25;
  if (dbpool_holder_acquire(h[4], 0) != -EAGAIN) return 26;
  for (int i = 0; i < 5; i++) dbpool_holder_free(h[i]);
  dbpool_coord_close(c);
  return 0;
}

TEST(settings_outlive_every_process)
{
  const char *db = tu_db("settings.db");
  int before = tu_count_segments();
  CHECK_RC(run_child(set_settings, db), 0);
  CHECK_RC(tu_count_segments(), before + 1); /* nobody attached; still there */
  CHECK_RC(run_child(see_settings, db), 0);
  CHECK_RC(run_child(see_settings, db), 0);
  CHECK_RC(dbpool_coord_remove(db, NULL, 0), 0);
  CHECK_RC(tu_count_segments(), before);
}

/* ------------------------------------------------------ removal vs. users */

#define USERS 6
#define REMOVERS 2
#define RACE_LIMIT 2

static void user_loop(const char *db, int id)
{
  unsigned seed = (unsigned)getpid();
  while (!atomic_load(&S->stop)) {
    dbpool_coord *c = NULL;
    int rc = dbpool_coord_open(db, 0, &c);
    atomic_fetch_add(&S->opens, 1);
    if (rc != 0) {
      /* -EAGAIN: "kept being removed while attaching" is allowed. */
      if (rc != -EAGAIN) note_bad(&S->bad_open, rc);
      continue;
    }
    if (rand_r(&seed) % 2) usleep(rand_r(&seed) % 300); /* widen the window */
    dbpool_holder *h = NULL;
    rc = dbpool_holder_new(c, &h);
    if (rc == -ESTALE) {
      atomic_fetch_add(&S->estale_holder, 1);
      dbpool_coord_close(c);
      continue; /* reopen */
    }
    if (rc != 0) {
      note_bad(&S->bad_holder, rc);
      dbpool_coord_close(c);
      continue;
    }
    for (int k = 0; k < 3; k++) {
      rc = dbpool_holder_acquire(h, (int)tu_ms(10000));
      if (rc == -ESTALE) {
        atomic_fetch_add(&S->estale_acquire, 1);
        note_bad(&S->bad_acquire, rc); /* removal with a live holder */
        break;
      }
      if (rc != 0) {
        note_bad(&S->bad_acquire, rc);
        break;
      }
      atomic_fetch_add(&S->acquired, 1);
      hold_flag(id, RACE_LIMIT);
      if (rand_r(&seed) % 2) usleep(rand_r(&seed) % 200);
      unhold_flag(id);
      if (dbpool_holder_release(h) != 0) note_bad(&S->bad_release, -1);
    }
    dbpool_holder_free(h);
    dbpool_coord_close(c);
    if (rand_r(&seed) % 4 == 0) usleep(rand_r(&seed) % 500);
  }
}

static void remover_loop(const char *db)
{
  while (!atomic_load(&S->stop)) {
    int rc = dbpool_coord_remove(db, NULL, 0);
    if (rc == 0) atomic_fetch_add(&S->removed, 1);
    else if (rc == -EBUSY) atomic_fetch_add(&S->busy, 1);
    else if (rc == -ENOENT) atomic_fetch_add(&S->enoent, 1);
    else atomic_fetch_add(&S->remove_other, 1);
  }
}

TEST(removal_racing_users_never_makes_two_pools)
{
  const char *db = tu_db("race.db");
  reset();
  setenv("DBPOOL_MAX_CONNECTIONS", "2", 1); /* every recreated pool: limit 2 */
  pid_t pids[USERS + REMOVERS];
  for (int i = 0; i < USERS + REMOVERS; i++) {
    pids[i] = fork();
    if (pids[i] < 0) exit(2);
    if (pids[i] == 0) {
      alarm(tu_sec(60));
      if (i >= USERS) remover_loop(db);
      else user_loop(db, i);
      _exit(0);
    }
  }
  unsetenv("DBPOOL_MAX_CONNECTIONS");
  /* Run for a while (the races are rare: the longer, the likelier), and
  ** on a slow machine (a sanitizer build, a loaded host) until at least a
  ** few removals happened, for at most 40 s (times tu_slowdown()). */
  double t0 = tu_now_ms();
  while (!atomic_load(&S->over) &&
         (tu_now_ms() - t0 < 6000 ||
          (atomic_load(&S->removed) < 3 && tu_now_ms() - t0 < tu_ms(40000))))
    tu_sleep_ms(50);
  atomic_store(&S->stop, 1);
  for (int i = 0; i < USERS + REMOVERS; i++) CHECK_RC(tu_wait_child(pids[i], 30000), 0);
  printf("  %ld removals (%ld busy, %ld absent), %ld opens, %ld holder_new -ESTALE, "
         "%ld acquires, at most %d held at once\n",
         (long)S->removed, (long)S->busy, (long)S->enoent, (long)S->opens,
         (long)S->estale_holder, (long)S->acquired, (int)S->max_seen);
  CHECK_RC(atomic_load(&S->over), 0);
  CHECK(atomic_load(&S->max_seen) <= RACE_LIMIT);
  CHECK_RC(atomic_load(&S->bad_open), 0);
  CHECK_RC(atomic_load(&S->bad_holder), 0);
  CHECK_RC(atomic_load(&S->bad_acquire), 0);
  CHECK_RC(atomic_load(&S->bad_release), 0);
  CHECK_RC(atomic_load(&S->remove_other), 0);
  if (S->first_bad_rc)
    fprintf(stderr, "  first unexpected result: %d (%s): %s\n", S->first_bad_rc,
            dbpool_strerror(S->first_bad_rc), S->first_bad_msg);
  if (!atomic_load(&S->over)) { /* (it stops early when the cap is broken) */
    CHECK(atomic_load(&S->removed) >= 1); /* the race really happened */
    CHECK(atomic_load(&S->acquired) >= 100);
  }
  CHECK(tu_count_segments() <= 1);
  dbpool_coord_remove(db, NULL, 1);
}

/* --------------------------------------- slow unlinks (deterministic races) */

/* Open db (new pools get limit 1), take a slot, mark it held in the flag
** array for hold_ms, release. */
static void slow_user(const char *db, int id, double hold_ms, double unlink_delay)
{
  alarm(tu_sec(20));
  unlink_delay_ms = unlink_delay;
  dbpool_coord *c;
  dbpool_holder *h;
  int rc = dbpool_coord_open(db, 0, &c);
  if (rc == 0) rc = dbpool_holder_new(c, &h);
  if (rc == 0) rc = dbpool_holder_acquire(h, (int)tu_ms(5000));
  if (rc != 0) {
    note_bad(&S->bad_acquire, rc);
    _exit(1);
  }
  hold_flag(id, 1);
  tu_sleep_ms(hold_ms);
  unhold_flag(id);
  dbpool_holder_release(h);
  _exit(0);
}

static pid_t spawn(void (*fn)(const char *, int, double, double), const char *db, int id,
                   double hold_ms, double delay)
{
  pid_t pid = fork();
  if (pid < 0) exit(2);
  if (pid == 0) fn(db, id, hold_ms, delay);
  return pid;
}

static void check_one_pool_held(void)
{
  CHECK_RC(atomic_load(&S->over), 0);
  CHECK(atomic_load(&S->max_seen) == 1);
  CHECK_RC(atomic_load(&S->bad_acquire), 0);
  if (S->first_bad_rc)
    fprintf(stderr, "  unexpected: %d (%s): %s\n", S->first_bad_rc,
            dbpool_strerror(S->first_bad_rc), S->first_bad_msg);
}

/* (a) A segment marked removed by a remover that died before unlinking it
** (the gate's REMOVED bit is set here by hand, as that remover would have).
** Opener 0 finds it and is slow to unlink its name; opener 1 finds it too,
** unlinks it, creates a new pool and takes its slot; then opener 0's unlink
** runs. Opener 0 must end up in opener 1's pool (waiting for its slot),
** not in a third one. */
TEST(slow_unlink_of_a_stale_segment_takes_no_new_pool)
{
  const char *db = tu_db("stale.db");
  reset();
  setenv("DBPOOL_MAX_CONNECTIONS", "1", 1);
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  char path[256];
  snprintf(path, sizeof path, "/dev/shm%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  dbp_header *h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  REQUIRE(h != MAP_FAILED);
  __atomic_fetch_or(&h->gate.half[1], G_REMOVED | G_SLOW, __ATOMIC_SEQ_CST);
  munmap(h, sizeof *h);

  pid_t slow = spawn(slow_user, db, 0, 300, 400);
  tu_sleep_ms(150); /* the slow one now sleeps in unlink() */
  pid_t fast = spawn(slow_user, db, 1, 1200, 0);
  CHECK_RC(tu_wait_child(slow, 20000), 0);
  CHECK_RC(tu_wait_child(fast, 20000), 0);
  unsetenv("DBPOOL_MAX_CONNECTIONS");
  check_one_pool_held();
  CHECK(tu_count_segments() <= 1);
  dbpool_coord_remove(db, NULL, 1);
}

static void slow_remover(const char *db, int id, double hold_ms, double delay)
{
  (void)id;
  (void)hold_ms;
  alarm(tu_sec(20));
  unlink_delay_ms = delay;
  int rc = dbpool_coord_remove(db, NULL, 0);
  _exit(rc == 0 ? 0 : 1);
}

/* (b) A remover marks the pool removed and is slow to unlink its name.
** Opener 0 comes along meanwhile and must end up in a pool; opener 1 comes
** after the remover's unlink. They must share one pool. */
TEST(slow_unlink_by_a_remover_takes_no_new_pool)
{
  const char *db = tu_db("slow-remove.db");
  reset();
  setenv("DBPOOL_MAX_CONNECTIONS", "1", 1);
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  dbpool_coord_close(c);
  pid_t r = spawn(slow_remover, db, 0, 0, 400);
  tu_sleep_ms(150); /* the remover sleeps in unlink() */
  pid_t u0 = spawn(slow_user, db, 0, 1500, 0);
  tu_sleep_ms(500); /* the remover's unlink has run */
  pid_t u1 = spawn(slow_user, db, 1, 300, 0);
  CHECK_RC(tu_wait_child(r, 20000), 0);
  CHECK_RC(tu_wait_child(u0, 20000), 0);
  CHECK_RC(tu_wait_child(u1, 20000), 0);
  unsetenv("DBPOOL_MAX_CONNECTIONS");
  check_one_pool_held();
  CHECK(tu_count_segments() <= 1);
  dbpool_coord_remove(db, NULL, 1);
}

/* A pool whose lock another process holds (stopped, say) stalls only its
** own slow paths: this process can still open other pools, and fork,
** while one of its threads waits to register in the wedged one. */
static void *register_in(void *arg)
{
  dbpool_holder *h;
  if (dbpool_holder_new(arg, &h) == 0) dbpool_holder_free(h);
  return NULL;
}

TEST(a_wedged_pool_stalls_no_other)
{
  const char *p_db = tu_db("wedged.db"), *q_db = tu_db("free.db");
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(p_db, 0, &c) == 0);
  char path[300];
  snprintf(path, sizeof path, "/dev/shm%s", dbpool_coord_segment_name(c));
  _Atomic int *held = tu_shared(sizeof *held);
  fflush(NULL);
  pid_t w = fork();
  REQUIRE(w >= 0);
  if (w == 0) {
    int fd = open(path, O_RDWR);
    dbp_header *h = mmap(NULL, DBP_SEGMENT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED) _exit(1);
    pthread_mutex_lock(&h->lock);
    atomic_store(held, 1);
    tu_sleep_ms(tu_ms(1500));
    pthread_mutex_unlock(&h->lock);
    _exit(0);
  }
  while (!atomic_load(held)) tu_sleep_ms(1);
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, register_in, c) == 0);
  tu_sleep_ms(tu_ms(100)); /* it waits for the lock */
  double t0 = tu_now_ms();
  dbpool_coord *q;
  CHECK_RC(dbpool_coord_open(q_db, 0, &q), 0);
  double open_ms = tu_now_ms() - t0;
  dbpool_coord_close(q);
  t0 = tu_now_ms();
  pid_t k = fork();
  if (k == 0) _exit(0);
  double fork_ms = tu_now_ms() - t0;
  waitpid(k, NULL, 0);
  printf("   beside a wedged pool: open of another took %.0f ms, fork %.0f ms\n", open_ms,
         fork_ms);
  /* The wedge lasts 1.5 s (both times tu_slowdown()). */
  CHECK(open_ms < tu_ms(1000) && fork_ms < tu_ms(1000));
  pthread_join(t, NULL);
  CHECK_RC(tu_wait_child(w, 10000), 0);
  dbpool_coord_close(c);
}

int main(void)
{
  tu_init("lifecycle");
  S = tu_shared(sizeof *S);
  RUN(concurrent_creation_makes_one_pool);
  RUN(settings_outlive_every_process);
  RUN(removal_racing_users_never_makes_two_pools);
  RUN(slow_unlink_of_a_stale_segment_takes_no_new_pool);
  RUN(slow_unlink_by_a_remover_takes_no_new_pool);
  RUN(a_wedged_pool_stalls_no_other);
  return tu_finish();
}
