/*
** lifecycle.c -- creating, keeping and removing pools while processes race.
**
** Checks:
**   - atomic creation (segment.c: the segment is initialised completely
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
**     max_connections. Removals must actually have happened.
*/
#include <stdatomic.h>

#include "testutil.h"

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
  _Atomic int flags[MAXP];
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

static void reset(void) { memset(S, 0, sizeof *S); }

static void barrier(int n)
{
  atomic_fetch_add(&S->arrived, 1);
  double end = tu_now_ms() + 20000;
  while (atomic_load(&S->arrived) < n && tu_now_ms() < end) {
  }
}

/* Mark holder id as holding; count holders at once against limit. */
static void hold_flag(int id, int limit)
{
  atomic_store(&S->flags[id], 1);
  int n = 0;
  for (int i = 0; i < MAXP; i++) n += atomic_load(&S->flags[i]);
  if (n > limit) atomic_fetch_add(&S->over, 1);
  int m = atomic_load(&S->max_seen);
  while (n > m && !atomic_compare_exchange_weak(&S->max_seen, &m, n)) {
  }
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
  for (int round = 0; round < 5; round++) {
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
        alarm(30);
        char v[16];
        snprintf(v, sizeof v, "%d", 2 + i); /* a different limit each */
        setenv("DBPOOL_MAX_CONNECTIONS", v, 1);
        snprintf(v, sizeof v, "%d", 1000 + i);
        setenv("DBPOOL_ACQUIRE_TIMEOUT_MS", v, 1);
        barrier(NPROC);
        dbpool_coord *c = NULL;
        dbpool_holder *h = NULL;
        dbpool_stats st;
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
            int rc = dbpool_holder_acquire(h, 10000);
            if (rc != 0) {
              S->rc_acquire[i] = rc;
              break;
            }
            hold_flag(i, (int)S->max[i]);
            sched_yield();
            atomic_store(&S->flags[i], 0);
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
    dbpool_stats st;
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
    alarm(20);
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
    if (dbpool_holder_acquire(h[i], 5000) != 0) return 25;
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
      rc = dbpool_holder_acquire(h, 10000);
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
      atomic_store(&S->flags[id], 0);
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
  pid_t pids[USERS + 1];
  for (int i = 0; i <= USERS; i++) {
    pids[i] = fork();
    if (pids[i] < 0) exit(2);
    if (pids[i] == 0) {
      alarm(60);
      if (i == USERS) remover_loop(db);
      else user_loop(db, i);
      _exit(0);
    }
  }
  unsetenv("DBPOOL_MAX_CONNECTIONS");
  /* Run until enough removals happened (or the time is up). */
  double t0 = tu_now_ms();
  while (tu_now_ms() - t0 < 8000 &&
         !(atomic_load(&S->removed) >= 200 && tu_now_ms() - t0 > 2000))
    tu_sleep_ms(50);
  atomic_store(&S->stop, 1);
  for (int i = 0; i <= USERS; i++) CHECK_RC(tu_wait_child(pids[i], 30000), 0);
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
  CHECK(atomic_load(&S->removed) >= 10); /* the race really happened */
  CHECK(atomic_load(&S->acquired) >= 100);
  CHECK(tu_count_segments() <= 1);
  dbpool_coord_remove(db, NULL, 1);
}

int main(void)
{
  tu_init("lifecycle");
  S = tu_shared(sizeof *S);
  RUN(concurrent_creation_makes_one_pool);
  RUN(settings_outlive_every_process);
  RUN(removal_racing_users_never_makes_two_pools);
  return tu_finish();
}
