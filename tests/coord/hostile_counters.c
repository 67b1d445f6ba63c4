/*
** hostile_counters.c -- targeted hostile bytes in a live segment, one field
** at a time, and what the coordinator makes of each (the random fuzzing is
** corrupt.c's; these pin down the repairs):
**
** - owner-died recovery (lock.c) frees records whose owner is out of the
**   process table or a free process record, resets a limit out of range to
**   1, and completes a reclaim journal (total_reclaimed never goes down);
** - a release that finds the gate counting no slot while it holds one
**   repairs the count from the records and releases; if the records do not
**   show it holding either, it fails with -EBADMSG ("lost track");
** - an acquire_timeout_ms out of range in the segment means the longest
**   wait, not "do not wait";
** - a wait queue whose links are garbage is rebuilt from the records in
**   ticket order, equal tickets in record order, and the next ticket is
**   past every ticket seen;
** - a segment file replaced under its name after we attached is not
**   registered in: the first holder is refused with -ESTALE.
*/
#include <pthread.h>

#include "testutil.h"
#include "coordinator/internal.h"

/* A process that dies holding c's lock: the next locker recovers. */
static void die_holding_lock(dbpool_coord *c)
{
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    pthread_mutex_lock(&c->hdr->lock);
    _exit(0);
  }
  REQUIRE(tu_wait_child(pid, 10000) == 0);
}

static void gate_store(dbp_header *h, uint64_t bits)
{
  dbp_gate g = dbp_gate_load(h);
  while (!dbp_gate_cas(h, &g, (dbp_gate){.seq = g.seq, .bits = bits})) {
  }
}

TEST(recovery_frees_records_of_no_live_process_and_repairs_the_limit)
{
  tu_pool p = tu_pool_open("recover.db", 3, 3, 1);
  dbp_header *h = p.c->hdr;
  uint32_t rb = dbp_holder_record(p.h[1]), rc_ = dbp_holder_record(p.h[2]);
  /* B's record: owner beyond the process table. C's: owner a free process
  ** record (record 1 is on the page of record 0: touching it is safe). */
  CHECK(dbp_process_hwm(h) == 1);
  atomic_store(&h->process_hwm, 2);
  atomic_store(&p.c->procs[1].state, PROC_FREE);
  atomic_store(&p.c->recs[rb].owner, 7);
  atomic_store(&p.c->recs[rc_].owner, 2);
  /* A limit out of range, and a reclaim journal that a dead reaper left. */
  gate_store(h, g_with(dbp_gate_load(h).bits, G_MAX_SHIFT, 8191));
  uint64_t before = atomic_load(&h->total_reclaimed);
  atomic_store(&h->reclaim_journal_after, before + 7);
  atomic_store(&h->reclaim_journal_seq, 1);

  die_holding_lock(p.c);
  CHECK_RC(dbpool_coord_set(p.c, DBPOOL_SETTING_PAUSED, 0), 0); /* recovers */
  int64_t max = 0;
  CHECK_RC(dbpool_coord_get(p.c, DBPOOL_SETTING_MAX_CONNECTIONS, &max), 0);
  CHECK(max == 1);
  CHECK(atomic_load(&p.c->recs[rb].owner) == 0);
  CHECK(atomic_load(&p.c->recs[rc_].owner) == 0);
  CHECK(atomic_load(&h->reclaim_journal_seq) == 0);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(p.c, &st), 0);
  CHECK(st.total_reclaimed == before + 7);
  CHECK(st.active == 1 && st.max_connections == 1);
  CHECK(dbpool_holder_held(p.h[0]));
  /* A's slot is still A's, and released normally. */
  CHECK_RC(dbpool_holder_release(p.h[0]), 0);
  CHECK_RC(dbpool_coord_stats(p.c, &st), 0);
  CHECK(st.active == 0);
  tu_pool_close(&p);
}

/* A journal whose count was already stored is not counted again. */
TEST(recovery_keeps_a_completed_journal_count)
{
  tu_pool p = tu_pool_open("journal.db", 2, 1, 0);
  dbp_header *h = p.c->hdr;
  atomic_store(&h->total_reclaimed, 5);
  atomic_store(&h->reclaim_journal_after, 5);
  atomic_store(&h->reclaim_journal_seq, 1);
  die_holding_lock(p.c);
  CHECK_RC(dbpool_coord_set(p.c, DBPOOL_SETTING_PAUSED, 0), 0);
  CHECK(atomic_load(&h->total_reclaimed) == 5);
  CHECK(atomic_load(&h->reclaim_journal_seq) == 0);
  /* A journal of an operation the gate has not seen (garbage: its
  ** sequence number is ahead of the gate's) is dropped, not counted. */
  atomic_store(&h->reclaim_journal_after, 9);
  atomic_store(&h->reclaim_journal_seq, dbp_gate_load(h).seq + 100);
  die_holding_lock(p.c);
  CHECK_RC(dbpool_coord_set(p.c, DBPOOL_SETTING_PAUSED, 0), 0);
  CHECK(atomic_load(&h->total_reclaimed) == 5);
  CHECK(atomic_load(&h->reclaim_journal_seq) == 0);
  tu_pool_close(&p);
}

TEST(release_repairs_a_gate_that_lost_its_count)
{
  tu_pool p = tu_pool_open("lostcount.db", 2, 2, 1);
  dbp_header *h = p.c->hdr;
  /* The gate says nothing is held (garbage), and SLOW. */
  gate_store(h, g_with(dbp_gate_load(h).bits, G_ACTIVE_SHIFT, 0) | G_SLOW);
  CHECK_RC(dbpool_holder_release(p.h[0]), 0);
  CHECK(!dbpool_holder_held(p.h[0]));
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(p.c, &st), 0);
  CHECK(st.active == 0);
  CHECK_RC(dbpool_holder_acquire(p.h[0], 0), 0);
  CHECK_RC(dbpool_holder_acquire(p.h[1], 0), 0);
  CHECK_RC(dbpool_coord_stats(p.c, &st), 0);
  CHECK(st.active == 2);
  tu_pool_close(&p);
}

TEST(release_of_a_slot_no_record_shows_fails)
{
  tu_pool p = tu_pool_open("losttrack.db", 2, 2, 1);
  dbp_header *h = p.c->hdr;
  int me = p.c->proc_idx;
  /* Neither the gate nor our process record (garbage: free) says we hold:
  ** the repair takes the record back, and the release has nothing left. */
  gate_store(h, g_with(dbp_gate_load(h).bits, G_ACTIVE_SHIFT, 0) | G_SLOW);
  atomic_store(&p.c->procs[me].state, PROC_FREE);
  CHECK_RC(dbpool_holder_release(p.h[0]), -EBADMSG);
  CHECK(strstr(dbpool_last_error(), "lost track of holder") != NULL);
  CHECK(!dbpool_holder_held(p.h[0]));
  CHECK(REC_STATE(atomic_load(&p.c->recs[dbp_holder_record(p.h[0])].word)) == REC_FREE);
  CHECK(g_active(dbp_gate_load(h).bits) == 0);
  atomic_store(&p.c->procs[me].state, PROC_LIVE);
  tu_pool_close(&p);
  /* The pool still works. */
  p = tu_pool_open("losttrack.db", 2, 2, 2);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(p.c, &st), 0);
  CHECK(st.active == 2);
  tu_pool_close(&p);
}

typedef struct waiter {
  dbpool_holder *h;
  int timeout;
  _Atomic int rc, done;
} waiter;

static void *wait_thread(void *arg)
{
  waiter *w = arg;
  atomic_store(&w->rc, dbpool_holder_acquire(w->h, w->timeout));
  atomic_store(&w->done, 1);
  return NULL;
}

static int wait_queued(dbpool_coord *c, unsigned n)
{
  for (int i = 0; i < 10000 && dbp_coord_waiting(c) < n; i++) tu_sleep_ms(1);
  return dbp_coord_waiting(c) == n;
}

static int wait_done(waiter *w)
{
  for (int i = 0; i < 10000 && !atomic_load(&w->done); i++) tu_sleep_ms(1);
  return atomic_load(&w->done);
}

TEST(a_default_timeout_out_of_range_waits_the_longest)
{
  static const int32_t garbage[] = {-5, DBPOOL_ACQUIRE_TIMEOUT_LIMIT + 1};
  for (int k = 0; k < 2; k++) {
    tu_pool p = tu_pool_open("deftimeout.db", 1, 2, 1);
    atomic_store(&p.c->hdr->acquire_timeout_ms, garbage[k]);
    waiter w = {.h = p.h[1], .timeout = DBPOOL_TIMEOUT_DEFAULT};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, wait_thread, &w) == 0);
    CHECK(wait_queued(p.c, 1)); /* it waits: not refused at once */
    CHECK(!atomic_load(&w.done));
    CHECK_RC(dbpool_holder_release(p.h[0]), 0);
    CHECK(wait_done(&w));
    pthread_join(t, NULL);
    CHECK_RC(atomic_load(&w.rc), 0);
    CHECK(dbpool_holder_held(p.h[1]));
    atomic_store(&p.c->hdr->acquire_timeout_ms, 5000);
    tu_pool_close(&p);
  }
}

TEST(a_garbled_queue_is_rebuilt_in_ticket_then_record_order)
{
  tu_pool p = tu_pool_open("rebuild.db", 1, 4, 1);
  dbp_header *h = p.c->hdr;
  waiter w[3];
  pthread_t t[3];
  for (int i = 0; i < 3; i++) {
    w[i] = (waiter){.h = p.h[1 + i], .timeout = 20000};
    REQUIRE(pthread_create(&t[i], NULL, wait_thread, &w[i]) == 0);
    CHECK(wait_queued(p.c, (unsigned)i + 1));
  }
  /* Under the lock: the same ticket for the last two, a head that is no
  ** record, links that go nowhere. */
  REQUIRE(dbp_lock(p.c, -1) == 0);
  uint64_t next = atomic_load(&h->next_ticket);
  atomic_store(&p.c->recs[dbp_holder_record(p.h[2])].ticket, next + 50); /* ahead */
  atomic_store(&p.c->recs[dbp_holder_record(p.h[3])].ticket, next + 50);
  atomic_store(&h->q_head, 9000);
  atomic_store(&p.c->recs[dbp_holder_record(p.h[1])].q_next, 9001);
  dbp_unlock(p.c);
  /* The order is B (ticket first), then C, D by record. */
  CHECK_RC(dbpool_holder_release(p.h[0]), 0);
  CHECK(atomic_load(&h->next_ticket) == next + 51); /* never hands out one again */
  CHECK(wait_done(&w[0]));
  CHECK(!atomic_load(&w[1].done) && !atomic_load(&w[2].done));
  CHECK(dbp_coord_waiting(p.c) == 2);
  dbpool_holder *first = dbp_holder_record(p.h[2]) < dbp_holder_record(p.h[3]) ? p.h[2] : p.h[3];
  waiter *wf = first == p.h[2] ? &w[1] : &w[2], *ws = first == p.h[2] ? &w[2] : &w[1];
  CHECK_RC(dbpool_holder_release(p.h[1]), 0);
  CHECK(wait_done(wf));
  CHECK(!atomic_load(&ws->done));
  CHECK_RC(dbpool_holder_release(first), 0);
  CHECK(wait_done(ws));
  for (int i = 0; i < 3; i++) {
    pthread_join(t[i], NULL);
    CHECK_RC(atomic_load(&w[i].rc), 0);
  }
  CHECK(dbp_coord_waiting(p.c) == 0);
  tu_pool_close(&p);
}

/* Copy the segment file to a new file and rename it over the name. */
static void replace_segment_file(const char *name)
{
  char path[256], tmp[300], cmd[1200];
  snprintf(path, sizeof path, "/dev/shm%s", name);
  snprintf(tmp, sizeof tmp, "%s.new", path);
  snprintf(cmd, sizeof cmd, "cp -p '%s' '%s' && mv '%s' '%s'", path, tmp, tmp, path);
  REQUIRE(system(cmd) == 0);
}

TEST(a_segment_replaced_under_its_name_is_not_registered_in)
{
  const char *db = tu_db("replaced.db");
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  char name[DBP_SEGMENT_NAME_MAX];
  snprintf(name, sizeof name, "%s", dbpool_coord_segment_name(c));
  replace_segment_file(name);
  dbpool_holder *hd = NULL;
  CHECK_RC(dbpool_holder_new(c, &hd), -ESTALE);
  CHECK(hd == NULL);
  CHECK(strstr(dbpool_last_error(), "was removed; reopen it") != NULL);
  dbpool_coord_close(c);
  /* An open notices within a second that the name is another file's now
  ** (not at the price of a stat on every open): then it uses that file. */
  tu_sleep_ms(1100);
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK_STR(dbpool_coord_segment_name(c), name);
  CHECK_RC(dbpool_holder_new(c, &hd), 0);
  CHECK_RC(dbpool_holder_acquire(hd, 0), 0);
  dbpool_holder_free(hd);
  dbpool_coord_close(c);
}

int main(void)
{
  tu_init("hostile");
  RUN(recovery_frees_records_of_no_live_process_and_repairs_the_limit);
  RUN(recovery_keeps_a_completed_journal_count);
  RUN(release_repairs_a_gate_that_lost_its_count);
  RUN(release_of_a_slot_no_record_shows_fails);
  RUN(a_default_timeout_out_of_range_waits_the_longest);
  RUN(a_garbled_queue_is_rebuilt_in_ticket_then_record_order);
  RUN(a_segment_replaced_under_its_name_is_not_registered_in);
  return tu_finish();
}
