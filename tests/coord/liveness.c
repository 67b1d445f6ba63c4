/*
** liveness.c -- a process is dead only when it is dead, in any pid
** namespace, whether or not anyone waits (coordinator/liveness.c).
**
** Checks:
**   - a holder in another pid namespace (`unshare -pf --mount-proc`, as a
**     container sharing /dev/shm and the database would be) is counted and
**     seen alive from the host: listed (its process state "elsewhere"),
**     counted in processes, the pool cannot be removed without force, and
**     the host does not get its slot; when it dies, its slot comes back
**     within the reclaim bound;
**   - a holder that exits without closing while nobody waits is never shown
**     as a holder (not even through a read-only handle that cannot reclaim
**     its slot), and its slot is back as soon as anyone reads or acquires;
**   - a stopped (SIGSTOP) holder is alive and shown as stopped;
**   - a read-only handle is read-only even in a process that has the pool
**     open for writing (issue 10, item 11);
**   - statistics never take a live holder for a dead one: while processes
**     keep registering, holding and leaving, a reader never sees a slot
**     reclaimed (nobody died), and the counters never go down.
** Skipped with a message where unshare is not permitted.
*/
#include <stdatomic.h>

#include "testutil.h"

/* Re-executed as "liveness hold DB" inside a new pid namespace: hold one
** slot, say so on stdout, and wait until stdin closes or we are killed. */
static int hold_main(const char *db)
{
  dbpool_coord *c;
  dbpool_holder *h;
  if (dbpool_coord_open(db, 0, &c) || dbpool_holder_new(c, &h) ||
      dbpool_holder_acquire(h, 0)) {
    fprintf(stderr, "hold: %s\n", dbpool_last_error());
    return 3;
  }
  printf("held %d\n", (int)getpid());
  fflush(stdout);
  char buf[16];
  while (read(0, buf, sizeof buf) > 0) {
  }
  dbpool_holder_free(h);
  dbpool_coord_close(c);
  return 0;
}

static int64_t wait_until_acquired(dbpool_holder *h, double limit_ms)
{
  double t0 = tu_now_ms();
  int rc = dbpool_holder_acquire(h, (int)limit_ms);
  return rc == 0 ? (int64_t)(tu_now_ms() - t0) : rc;
}

TEST(a_holder_in_another_pid_namespace_is_alive_until_it_dies)
{
  const char *db = tu_db("container.db");
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1) == 0);
  char self[512];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  REQUIRE(len > 0);
  self[len] = 0;
  int in[2], out[2];
  REQUIRE(pipe(in) == 0 && pipe(out) == 0);
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    execlp("unshare", "unshare", "-pf", "--mount-proc", "--kill-child", self, "hold", db,
           (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  char line[64] = "";
  ssize_t n = read(out[0], line, sizeof line - 1);
  if (n <= 0 || strncmp(line, "held ", 5) != 0) {
    printf("   skipped: cannot run a holder in a new pid namespace (unshare -pf)\n");
    close(in[1]);
    close(out[0]);
    tu_wait_child(pid, 10000);
    dbpool_coord_close(c);
    return;
  }
  line[n] = 0;
  CHECK_RC(atoi(line + 5), 1); /* pid 1 of its namespace */
  /* Alive, seen from the host, in every way. */
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  dbpool_holder_info info[4];
  CHECK_RC(dbpool_coord_reap(c), 0);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.active == 1 && st.processes == 1);
  CHECK_RC(dbpool_coord_holders(c, info, 4, sizeof *info), 1);
  CHECK_RC(info[0].process_state, DBPOOL_PROCESS_ELSEWHERE);
  CHECK_RC(dbpool_coord_remove(db, NULL, 0), -EBUSY);
  dbpool_holder *h;
  REQUIRE(dbpool_holder_new(c, &h) == 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), -EAGAIN);
  CHECK_RC(dbpool_holder_acquire(h, 200), -ETIMEDOUT);
  /* It dies (the namespace's init, killed from the host): its slot comes
  ** back to a waiter within the reclaim bound (generous here: timing is
  ** the benchmark's business). */
  kill(pid, SIGKILL); /* unshare; --kill-child: its child, pid 1 inside, too */
  int64_t waited = wait_until_acquired(h, tu_ms(10000));
  CHECK(waited >= 0);
  printf("   slot of the dead namespaced holder came back in %lld ms\n", (long long)waited);
  close(in[1]);
  close(out[0]);
  tu_wait_child(pid, 10000);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.active == 1 && st.total_reclaimed == 1 && st.processes == 1);
  dbpool_holder_free(h);
  dbpool_coord_close(c);
}

typedef struct {
  _Atomic int ready;
} shared;
static shared *S;

static pid_t holding_child(const char *db)
{
  atomic_store(&S->ready, 0);
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    alarm(tu_sec(30));
    tu_child_take_slot(db, "child");
    atomic_store(&S->ready, 1);
    for (;;) pause();
  }
  for (long i = 0; i < tu_polls(20000) && !atomic_load(&S->ready); i++) tu_sleep_ms(1);
  REQUIRE(atomic_load(&S->ready));
  return pid;
}

TEST(a_dead_holder_is_never_shown_and_its_slot_comes_back_unasked)
{
  const char *db = tu_db("unasked.db");
  dbpool_coord *c, *ro;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1) == 0);
  REQUIRE(dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &ro) == 0);
  pid_t pid = holding_child(db);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  dbpool_holder_info info[4];
  CHECK_RC(dbpool_coord_holders(ro, info, 4, sizeof *info), 1);
  kill(pid, SIGKILL);
  CHECK_RC(tu_wait_child(pid, 10000), 128 + SIGKILL);
  /* Nobody waits, nobody reaped: still, the dead holder is not shown. */
  CHECK_RC(dbpool_coord_stats(ro, &st), 0);
  CHECK(st.active == 0 && st.processes == 0 && st.total_reclaimed == 1);
  CHECK(st.total_acquired == st.total_released + st.total_reclaimed + st.active);
  CHECK_RC(dbpool_coord_holders(ro, info, 4, sizeof *info), 0);
  /* The first reader that may write gives it back. */
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.active == 0 && st.total_reclaimed == 1);
  dbpool_holder *h;
  REQUIRE(dbpool_holder_new(c, &h) == 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  dbpool_holder_free(h);

  /* Or the first acquire that finds the pool full, within a second. */
  pid = holding_child(db);
  kill(pid, SIGKILL);
  CHECK_RC(tu_wait_child(pid, 10000), 128 + SIGKILL);
  REQUIRE(dbpool_holder_new(c, &h) == 0);
  int64_t waited = wait_until_acquired(h, tu_ms(10000));
  CHECK(waited >= 0);
  printf("   an arrival got the dead holder's slot after %lld ms\n", (long long)waited);
  dbpool_holder_free(h);
  dbpool_coord_close(ro);
  dbpool_coord_close(c);
}

TEST(a_stopped_holder_is_alive_and_shown_stopped)
{
  const char *db = tu_db("stopped.db");
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  pid_t pid = holding_child(db);
  dbpool_holder_info info[4];
  CHECK_RC(dbpool_coord_holders(c, info, 4, sizeof *info), 1);
  CHECK_RC(info[0].process_state, DBPOOL_PROCESS_RUNNING);
  kill(pid, SIGSTOP);
  int seen = 0;
  for (long i = 0; i < tu_polls(2000) && !seen; i++) {
    seen = dbpool_coord_holders(c, info, 4, sizeof *info) == 1 &&
           info[0].process_state == DBPOOL_PROCESS_STOPPED;
    if (!seen) tu_sleep_ms(1);
  }
  CHECK(seen);
  CHECK_RC(dbpool_coord_reap(c), 0);
  kill(pid, SIGCONT);
  kill(pid, SIGKILL);
  tu_wait_child(pid, 10000);
  dbpool_coord_close(c);
}

TEST(a_read_only_handle_is_read_only_beside_a_writable_one)
{
  const char *db = tu_db("ro.db");
  dbpool_coord *rw, *ro;
  REQUIRE(dbpool_coord_open(db, 0, &rw) == 0);
  REQUIRE(dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &ro) == 0);
  dbpool_holder *h = NULL;
  CHECK_RC(dbpool_holder_new(ro, &h), -EROFS);
  CHECK(h == NULL);
  CHECK_RC(dbpool_coord_set(ro, DBPOOL_SETTING_MAX_CONNECTIONS, 3), -EROFS);
  CHECK_RC(dbpool_coord_reap(ro), -EROFS);
  int64_t v = 0;
  CHECK_RC(dbpool_coord_get(ro, DBPOOL_SETTING_MAX_CONNECTIONS, &v), 0);
  CHECK_RC(v, 10);
  CHECK_RC(dbpool_coord_set(rw, DBPOOL_SETTING_MAX_CONNECTIONS, 3), 0);
  CHECK_RC(dbpool_coord_get(ro, DBPOOL_SETTING_MAX_CONNECTIONS, &v), 0);
  CHECK_RC(v, 3);
  dbpool_coord_close(ro);
  dbpool_coord_close(rw);
}

TEST(statistics_never_take_the_living_for_dead)
{
  const char *db = tu_db("busy-stats.db");
  dbpool_coord *c, *ro;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  REQUIRE(dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &ro) == 0);
  _Atomic int *stop = tu_shared(sizeof *stop);
  pid_t kids[2];
  for (int k = 0; k < 2; k++) {
    fflush(NULL);
    kids[k] = fork();
    REQUIRE(kids[k] >= 0);
    if (kids[k] == 0) {
      alarm(tu_sec(30));
      dbpool_coord *cc;
      if (dbpool_coord_open(db, 0, &cc)) _exit(1);
      while (!atomic_load(stop)) { /* register, hold, leave, over and over */
        dbpool_holder *h;
        if (dbpool_holder_new(cc, &h)) _exit(2);
        dbpool_holder_acquire(h, -1);
        dbpool_holder_free(h);
      }
      _exit(0);
    }
  }
  uint64_t readings = 0, worst_reclaimed = 0, went_down = 0, last_released = 0;
  double end = tu_now_ms() + 1500;
  while (tu_now_ms() < end) {
    dbpool_host_stats st;
    DBPOOL_INIT(&st);
    if (dbpool_coord_stats(ro, &st) != 0) continue;
    readings++;
    if (st.total_reclaimed > worst_reclaimed) worst_reclaimed = st.total_reclaimed;
    if (st.total_released < last_released) went_down++;
    last_released = st.total_released;
  }
  atomic_store(stop, 1);
  for (int k = 0; k < 2; k++) CHECK_RC(tu_wait_child(kids[k], 10000), 0);
  printf("   %llu readings while processes came and went\n", (unsigned long long)readings);
  CHECK(readings > 0);
  CHECK_RC(worst_reclaimed, 0);
  CHECK_RC(went_down, 0);
  dbpool_coord_close(ro);
  dbpool_coord_close(c);
}

int main(int argc, char **argv)
{
  if (argc == 3 && strcmp(argv[1], "hold") == 0) return hold_main(argv[2]);
  tu_init("liveness");
  S = tu_shared(sizeof *S);
  RUN(a_holder_in_another_pid_namespace_is_alive_until_it_dies);
  RUN(a_dead_holder_is_never_shown_and_its_slot_comes_back_unasked);
  RUN(a_stopped_holder_is_alive_and_shown_stopped);
  RUN(a_read_only_handle_is_read_only_beside_a_writable_one);
  RUN(statistics_never_take_the_living_for_dead);
  return tu_finish();
}
