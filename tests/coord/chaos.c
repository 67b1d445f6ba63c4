/*
** chaos.c -- SIGKILL holders and waiters at random moments: the cap still
** holds, waiters keep getting slots (a dead holder's slot comes back), and
** at the end nothing has leaked and the statistics add up.
**
** Children hammer acquire/release on a pool with a small limit, so that most
** of them are always waiting. The parent repeatedly picks a child (one that
** holds, one that waits, or any), SIGKILLs it, reaps it with waitpid and forks
** a replacement in its place.
**
** The independent check, sound despite kills. One test-owned 128-bit word in
** shared memory: bit i (low half) is child i's "I hold" flag, set right after
** a successful acquire and cleared right before release; bit 64 + i (high
** half) is the parent's "child i is killed" mark, set BEFORE the SIGKILL and
** cleared only after waitpid, together with the dead child's flag, before a
** replacement is forked. A child sets its flag with a 16-byte compare-and-swap
** that returns the whole word: an atomic snapshot of all flags and marks at
** that instant T. It counts the flags of children not marked killed and
** records a violation if that exceeds the limit. Why that is sound: a child
** unmarked at T was not killed by T (the mark comes first), so it is alive, and
** its flag being up means it holds a slot at T. The flag of a killed child
** may stay up after the library has reclaimed its slot and handed it to
** someone else, but the library can only do that once the child is dead,
** which is after the kill, which is after the mark: such a flag is never
** counted. So the count is at most the slots held at T, at most the limit.
** (A plain scan of per-child flags would not do: it is no snapshot, and a
** flag cleared and another set while it runs would be counted together.)
**
** Children publish what they are doing ('W' in acquire, 'H' holding, 'R'
** releasing, 'I' neither, 'S' starting); the parent reads it after the
** child is dead, so the state is exactly the one it died in. Now and then
** the parent kills a replacement right away, while it attaches, registers
** or creates its holder under the pool's lock.
**
** Checked: no violation, and the checker saw the pool full; enough kills of
** holders and of waiters; in every 1-second window some acquire succeeded
** (a dead holder's slot only comes back through the survivors' reaping);
** dead processes are never counted as attached. After all children stopped
** and a final dbpool_coord_reap: nothing held or waited for, no holder
** listed, no process attached, total_acquired = total_released +
** total_reclaimed, and total_reclaimed, total_acquired and total_timeouts
** within what the kills allow (see the end of the test). A last test kills
** a holder while nobody waits: its slot stays taken until dbpool_coord_reap.
*/
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "testutil.h"

typedef unsigned __int128 u128;

#define KIDS 12  /* at most 64: one flag bit and one mark bit each */
#define LIMIT 2

enum { ST_START = 'S', ST_IDLE = 'I', ST_WAIT = 'W', ST_HOLD = 'H',
       ST_RELEASE = 'R', ST_EXIT = 'X' };

typedef struct {
  _Alignas(16) u128 word; /* low 64: holding flags; high 64: killed marks */
  _Atomic int stop;
  _Atomic uint64_t acquired;  /* successful acquires, as children count */
  _Atomic uint64_t failed;    /* -EAGAIN / -ETIMEDOUT */
  _Atomic uint64_t tryonce_etimedout;
  _Atomic uint64_t errors;
  _Atomic int bad_rc, bad_timeout;
  _Atomic uint64_t violations;
  _Atomic int viol_count;
  _Atomic int max_seen;
  struct {
    _Atomic int state;
  } kid[KIDS];
} shared_t;

static shared_t *S;

static void note_error(int rc, int timeout)
{
  if (atomic_fetch_add(&S->errors, 1) == 0) {
    atomic_store(&S->bad_rc, rc ? rc : -9999);
    atomic_store(&S->bad_timeout, timeout);
  }
}

/* Holds of 0 to ~2 ms: long enough that the parent often catches a child
** holding, short enough that waiters move. */
static void hold_random(uint64_t *rng)
{
  unsigned r = (unsigned)(tu_rnd(rng) % 100);
  if (r < 30) return; /* zero-length */
  if (r < 50) tu_spin_us((double)(tu_rnd(rng) % 50));
  else if (r < 60) sched_yield();
  else tu_sleep_ms((double)(tu_rnd(rng) % 2000) / 1000.0);
}

/* ------------------------------------------------------------ children */

static void child_main(int i, const char *db)
{
  alarm(tu_sec(90)); /* safety net: the parent stops us long before */
  uint64_t rng = ((uint64_t)getpid() << 20) ^ (uint64_t)(tu_now_ms() * 1000) ^
                 0x9e3779b97f4a7c15ull;
  const u128 bit = (u128)1 << i;
  dbpool_coord *c = NULL;
  dbpool_holder *h = NULL;
  int rc = dbpool_coord_open(db, 0, &c);
  if (rc == 0) rc = dbpool_holder_new(c, &h);
  if (rc) {
    note_error(rc, 0);
    _exit(3);
  }
  atomic_store(&S->kid[i].state, ST_IDLE);
  while (!atomic_load(&S->stop)) {
    unsigned r = (unsigned)(tu_rnd(&rng) % 100);
    int timeout = r < 70 ? -1 : r < 90 ? 5 + (int)(tu_rnd(&rng) % 60) : 0;
    atomic_store(&S->kid[i].state, ST_WAIT);
    rc = dbpool_holder_acquire(h, timeout);
    if (rc == 0) {
      atomic_store(&S->kid[i].state, ST_HOLD);
      atomic_fetch_add(&S->acquired, 1);
      u128 before = tu_u128_fetch_or(&S->word, bit);
      uint64_t holding = (uint64_t)before | (uint64_t)bit;
      uint64_t killed = (uint64_t)(before >> 64);
      if ((uint64_t)before & (uint64_t)bit) note_error(-1000, timeout);
      int n = __builtin_popcountll(holding & ~killed);
      if (n > LIMIT && atomic_fetch_add(&S->violations, 1) == 0)
        atomic_store(&S->viol_count, n);
      int m = atomic_load(&S->max_seen);
      while (n > m && !atomic_compare_exchange_weak(&S->max_seen, &m, n)) {
      }
      hold_random(&rng);
      tu_u128_fetch_and(&S->word, ~bit);
      atomic_store(&S->kid[i].state, ST_RELEASE);
      rc = dbpool_holder_release(h);
      if (rc) note_error(rc, -2);
    } else if ((rc == -EAGAIN && timeout == 0) || (rc == -ETIMEDOUT && timeout > 0)) {
      atomic_fetch_add(&S->failed, 1);
    } else if (rc == -ETIMEDOUT && timeout == 0) {
      /* A failed acquire (counted as a timeout by the pool) but not the
      ** documented -EAGAIN: see stress.c. Checked on its own. */
      atomic_fetch_add(&S->failed, 1);
      atomic_fetch_add(&S->tryonce_etimedout, 1);
    } else {
      note_error(rc, timeout); /* a wait-forever acquire must not fail */
    }
    atomic_store(&S->kid[i].state, ST_IDLE);
    if (tu_rnd(&rng) % 2) tu_spin_us((double)(tu_rnd(&rng) % 300));
  }
  atomic_store(&S->kid[i].state, ST_EXIT);
  dbpool_holder_free(h);
  dbpool_coord_close(c);
  _exit(0);
}

static pid_t pids[KIDS];

static void spawn(int i, const char *db)
{
  atomic_store(&S->kid[i].state, ST_START);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) child_main(i, db);
  pids[i] = pid;
}

/* A child in state want, searching from a random place; -1 if none. */
static int pick(uint64_t *rng, int want)
{
  int start = (int)(tu_rnd(rng) % KIDS);
  for (int k = 0; k < KIDS; k++) {
    int i = (start + k) % KIDS;
    if (atomic_load(&S->kid[i].state) == want) return i;
  }
  return -1;
}

typedef struct {
  int total, by_state[128], unexpected_status;
} kills_t;

/* Mark, kill, reap, classify, clear, replace. */
static void kill_and_replace(int i, const char *db, kills_t *k)
{
  tu_u128_fetch_or(&S->word, (u128)1 << (64 + i)); /* mark before the kill */
  kill(pids[i], SIGKILL);
  int st = tu_wait_child(pids[i], 10000);
  if (st != 128 + SIGKILL) {
    /* It had ended by itself before the kill: a failure of its own. */
    fprintf(stderr, "[%s] child %d (pid %d) ended with status %d\n", tu_current, i,
            (int)pids[i], st);
    k->unexpected_status++;
  }
  int state = atomic_load(&S->kid[i].state); /* dead: exact */
  k->by_state[state & 127]++;
  k->total++;
  tu_u128_fetch_and(&S->word, ~(((u128)1 << i) | ((u128)1 << (64 + i))));
  spawn(i, db);
}

TEST(sigkill_holders_and_waiters)
{
  enum { MIN_MS = 10000, WANT_KILLS = 300, WANT_EACH = 40 };
  /* Until enough kills, for at most 40 s (times tu_slowdown(): under
  ** valgrind every kill and fork is slower, not the 1-second windows). */
  const double MAX_MS = tu_ms(40000);
  const char *db = tu_db("chaos.db");
  dbpool_coord *c;
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, LIMIT), 0);
  memset(S, 0, sizeof *S);
  for (int i = 0; i < KIDS; i++) spawn(i, db);

  uint64_t rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull | 1;
  kills_t k = {0};
  int windows = 0, stalled = 0, lib_stalled = 0, too_many_procs = 0, over_cap = 0;
  uint64_t min_window = UINT64_MAX;
  double t0 = tu_now_ms(), next_window = t0 + 1000;
  uint64_t last_acq = 0, last_lib_acq = 0;
  for (;;) {
    double now = tu_now_ms();
    if (now - t0 >= MAX_MS) break;
    if (now - t0 >= MIN_MS && k.total >= WANT_KILLS && k.by_state[ST_HOLD] >= WANT_EACH &&
        k.by_state[ST_WAIT] >= WANT_EACH)
      break;
    tu_sleep_ms(3 + (double)(tu_rnd(&rng) % 35));

    /* Progress: in every 1-second window some acquire succeeded. A dead
    ** holder's slot is only ever given back by the survivors' reaping. */
    if (tu_now_ms() >= next_window) {
      uint64_t acq = atomic_load(&S->acquired);
      CHECK_RC(dbpool_coord_stats(c, &st), 0);
      windows++;
      if (acq == last_acq) stalled++;
      if (st.total_acquired == last_lib_acq) lib_stalled++;
      if (acq - last_acq < min_window) min_window = acq - last_acq;
      if (st.processes > KIDS) too_many_procs++; /* dead ones must not count */
      if (st.active > LIMIT) over_cap++;
      last_acq = acq;
      last_lib_acq = st.total_acquired;
      next_window += 1000;
      if (next_window < tu_now_ms()) next_window = tu_now_ms() + 1000;
    }

    /* A child that ended by itself is a failure; replace it anyway. */
    for (int i = 0; i < KIDS; i++) {
      int ws;
      if (waitpid(pids[i], &ws, WNOHANG) == pids[i]) {
        fprintf(stderr, "[%s] child %d (pid %d) ended by itself: status %d\n",
                tu_current, i, (int)pids[i],
                WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws));
        k.unexpected_status++;
        tu_u128_fetch_and(&S->word, ~((u128)1 << i));
        spawn(i, db);
      }
    }

    /* Whom to kill: a holder, a waiter, or anyone (starting up, releasing,
    ** between acquires). */
    unsigned mode = (unsigned)(tu_rnd(&rng) % 5);
    int i = mode < 2 ? pick(&rng, ST_HOLD) : mode < 4 ? pick(&rng, ST_WAIT) : -1;
    if (i < 0) i = (int)(tu_rnd(&rng) % KIDS);
    kill_and_replace(i, db, &k);
    /* Now and then kill the replacement at once: while it attaches,
    ** registers or creates its holder (under the pool's lock). */
    if (tu_rnd(&rng) % 10 == 0) {
      tu_sleep_ms((double)(tu_rnd(&rng) % 1500) / 1000.0);
      kill_and_replace(i, db, &k);
    }
  }
  double took = tu_now_ms() - t0;

  /* Stop: waiters still get slots as the others leave. */
  atomic_store(&S->stop, 1);
  double stop_deadline = tu_now_ms() + tu_ms(20000); /* for all of them together */
  for (int i = 0; i < KIDS; i++) {
    double left = stop_deadline - tu_now_ms();
    int s = tu_wait_child(pids[i], left > 0 ? left : 0);
    if (s != 0)
      fprintf(stderr, "[%s] child %d (pid %d) ended with status %d at stop\n",
              tu_current, i, (int)pids[i], s);
    CHECK(s == 0);
  }
  int reaped = dbpool_coord_reap(c);
  CHECK(reaped >= 0);

  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  uint64_t acq = atomic_load(&S->acquired), failed = atomic_load(&S->failed);
  int kh = k.by_state[ST_HOLD], kw = k.by_state[ST_WAIT], kr = k.by_state[ST_RELEASE];
  printf("   %s: %.1f s, %d kills (holding %d, waiting %d, releasing %d, idle %d, "
         "starting %d); %llu acquired, %llu failed, max %d at once; slowest 1-s "
         "window %llu acquires; pool: acquired %llu released %llu reclaimed %llu "
         "timeouts %llu, reap at end %d\n",
         tu_current, took / 1000, k.total, kh, kw, kr, k.by_state[ST_IDLE],
         k.by_state[ST_START], (unsigned long long)acq, (unsigned long long)failed,
         atomic_load(&S->max_seen), (unsigned long long)min_window,
         (unsigned long long)st.total_acquired, (unsigned long long)st.total_released,
         (unsigned long long)st.total_reclaimed, (unsigned long long)st.total_timeouts,
         reaped);

  /* The cap, checked independently. */
  CHECK(atomic_load(&S->violations) == 0);
  if (atomic_load(&S->violations))
    fprintf(stderr, "[%s] %llu violations; first: %d live holders at once (limit %d)\n",
            tu_current, (unsigned long long)atomic_load(&S->violations),
            atomic_load(&S->viol_count), LIMIT);
  CHECK(atomic_load(&S->max_seen) == LIMIT); /* the checker sees a full pool */
  CHECK(over_cap == 0);
  CHECK(atomic_load(&S->errors) == 0);
  if (atomic_load(&S->errors))
    fprintf(stderr, "[%s] %llu unexpected results; first: rc %d (%s), timeout %d\n",
            tu_current, (unsigned long long)atomic_load(&S->errors),
            atomic_load(&S->bad_rc), dbpool_strerror(atomic_load(&S->bad_rc)),
            atomic_load(&S->bad_timeout));
  CHECK(atomic_load(&S->tryonce_etimedout) == 0);
  if (atomic_load(&S->tryonce_etimedout))
    fprintf(stderr, "[%s] %llu try-once acquires failed with -ETIMEDOUT, not -EAGAIN\n",
            tu_current, (unsigned long long)atomic_load(&S->tryonce_etimedout));
  CHECK(k.unexpected_status == 0);

  /* Enough of each kind of kill. */
  CHECK(k.total >= 200);
  CHECK(kh >= 20);
  CHECK(kw >= 20);

  /* Progress throughout. */
  CHECK(windows >= 8);
  CHECK(stalled == 0);
  CHECK(lib_stalled == 0);
  CHECK(too_many_procs == 0);

  /* Nothing leaked, and the books balance. */
  CHECK(st.active == 0);
  CHECK(st.waiting == 0);
  CHECK(st.processes == 0);
  CHECK(st.total_acquired == st.total_released + st.total_reclaimed);
  CHECK(st.total_reclaimed >= 1);
  /* A child killed while 'H' held a slot: each was reclaimed. One killed
  ** in acquire or release may have held one; anyone else held none. */
  CHECK(st.total_reclaimed >= (uint64_t)kh);
  CHECK(st.total_reclaimed <= (uint64_t)(kh + kw + kr));
  /* Children count their acquires right after; a kill in between loses
  ** at most one per child killed in acquire or holding. */
  CHECK(st.total_acquired >= acq);
  CHECK(st.total_acquired <= acq + (uint64_t)(kh + kw));
  CHECK(st.total_timeouts >= failed);
  CHECK(st.total_timeouts <= failed + (uint64_t)kw);
  dbpool_holder_info info[4];
  CHECK_RC(dbpool_coord_holders(c, info, 4, sizeof *info), 0);
  dbpool_coord_close(c);
}

/* With nobody waiting, nobody reaps: a dead holder's slot stays taken until
** dbpool_coord_reap. Then the pool's full capacity is usable again. */
TEST(reap_on_demand_gives_the_slot_back)
{
  const char *db = tu_db("chaos-reap.db");
  dbpool_coord *c;
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  dbpool_holder_info info[4];
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, LIMIT), 0);
  memset(S, 0, sizeof *S);
  atomic_store(&S->kid[0].state, ST_START);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    alarm(tu_sec(30));
    dbpool_coord *cc;
    dbpool_holder *h;
    if (dbpool_coord_open(db, 0, &cc) || dbpool_holder_new(cc, &h) ||
        dbpool_holder_acquire(h, 0))
      _exit(3);
    atomic_store(&S->kid[0].state, ST_HOLD);
    for (;;) pause();
  }
  for (long n = 0; n < tu_polls(10000) && atomic_load(&S->kid[0].state) == ST_START; n++)
    tu_sleep_ms(1);
  CHECK(atomic_load(&S->kid[0].state) == ST_HOLD);
  kill(pid, SIGKILL);
  CHECK(tu_wait_child(pid, 10000) == 128 + SIGKILL);
  /* Seen through a read-only handle, which cannot reclaim: the dead
  ** holder is not shown, although its slot is not back yet. */
  dbpool_coord *ro;
  CHECK_RC(dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &ro), 0);
  CHECK_RC(dbpool_coord_stats(ro, &st), 0);
  CHECK(st.active == 0 && st.processes == 0 && st.total_reclaimed == 1);
  CHECK(st.total_acquired == st.total_released + st.total_reclaimed + st.active);
  CHECK_RC(dbpool_coord_holders(ro, info, 4, sizeof *info), 0);
  dbpool_coord_close(ro);
  CHECK_RC(dbpool_coord_reap(c), 1);
  CHECK_RC(dbpool_coord_reap(c), 0);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.active == 0 && st.total_reclaimed == 1 && st.waiting == 0);
  CHECK(st.total_acquired == st.total_released + st.total_reclaimed);
  CHECK_RC(dbpool_coord_holders(c, info, 4, sizeof *info), 0);

  /* Every slot is usable again, and no more than that. */
  dbpool_holder *h[LIMIT + 1];
  for (int i = 0; i <= LIMIT; i++) CHECK_RC(dbpool_holder_new(c, &h[i]), 0);
  for (int i = 0; i < LIMIT; i++) CHECK_RC(dbpool_holder_acquire(h[i], 0), 0);
  CHECK_RC(dbpool_holder_acquire(h[LIMIT], 0), -EAGAIN);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.processes == 1 && st.active == LIMIT);
  for (int i = 0; i <= LIMIT; i++) dbpool_holder_free(h[i]);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.active == 0);
  dbpool_coord_close(c);
}

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

int main(void)
{
  tu_init("chaos");
  alarm(tu_sec(170)); /* last resort: every wait above has its own bound */
  S = tu_shared(sizeof *S);
#ifdef UNDER_TSAN
  /* ThreadSanitizer emulates 16-byte atomics under a lock private to each
  ** process, so processes racing on the pool's gate (and on the flag word
  ** here) lose updates: the cap breaks for ThreadSanitizer's reasons. And
  ** these children are single-threaded: there is nothing for it to see. */
  printf("   ThreadSanitizer build: sigkill_holders_and_waiters skipped\n");
  (void)sigkill_holders_and_waiters;
#else
  RUN(sigkill_holders_and_waiters);
#endif
  RUN(reap_on_demand_gives_the_slot_back);
  return tu_finish();
}
