/*
** stats.c -- keeping and reading the pool's statistics (shown elsewhere: the
** extension's pool_stats, dbpoolctl).
**
** Nothing here adds work to the fast path. The gate's 64-bit sequence number
** counts every acquire and release, and its active field the difference, so
** total_acquired = (seq + active) / 2 and all releases = (seq - active) / 2,
** exact and consistent with each other at every instant, for free. Waits are
** recorded by waiters after they wake (atomics, no lock) in a log-linear
** histogram: 8 buckets per power of two (at most 12.5% wide) from 1 us up;
** attempts that did not wait are bucket 0, derived as the remainder.
**
** The wait figures cover every acquire that ended in a slot or a timeout:
** an acquire that gave up after waiting 5 s is the longest wait a caller
** saw, and leaving it out made a pool that timed callers out show a p99 of
** 0. The attempts are total_acquired + total_timeouts.
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HIST_SUB_BITS 3
#define HIST_FIRST_EXP 10 /* bucket 1 starts at 2^10 ns */

unsigned dbp_hist_bucket(uint64_t ns)
{
  if (ns < (UINT64_C(1) << HIST_FIRST_EXP)) return 0;
  unsigned e = 63u - (unsigned)__builtin_clzll(ns);
  unsigned sub = (unsigned)(ns >> (e - HIST_SUB_BITS)) & ((1u << HIST_SUB_BITS) - 1);
  unsigned b = 1 + ((e - HIST_FIRST_EXP) << HIST_SUB_BITS) + sub;
  return b < DBPOOL_HIST_BUCKETS ? b : DBPOOL_HIST_BUCKETS - 1;
}

uint64_t dbpool_hist_lower_ns(unsigned b)
{
  if (b == 0) return 0;
  if (b > DBPOOL_HIST_BUCKETS) b = DBPOOL_HIST_BUCKETS;
  unsigned e = HIST_FIRST_EXP + ((b - 1) >> HIST_SUB_BITS);
  unsigned sub = (b - 1) & ((1u << HIST_SUB_BITS) - 1);
  return (uint64_t)((1u << HIST_SUB_BITS) + sub) << (e - HIST_SUB_BITS);
}

void dbp_record_wait(dbp_header *h, uint64_t ns)
{
  atomic_fetch_add_explicit(&h->total_wait_ns, ns, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->hist[dbp_hist_bucket(ns)], 1, memory_order_relaxed);
  uint64_t m = atomic_load_explicit(&h->max_wait_ns, memory_order_relaxed);
  while (ns > m && !atomic_compare_exchange_weak(&h->max_wait_ns, &m, ns)) {
  }
}

void dbp_record_timeout(dbp_header *h, uint64_t waited_ns)
{
  atomic_fetch_add(&h->total_timeouts, 1);
  dbp_record_wait(h, waited_ns);
}

static void totals(dbp_gate g, uint64_t *acquired, uint64_t *released_all)
{
  uint64_t active = g_active(g.bits);
  *acquired = (g.seq + active) / 2;
  *released_all = g.seq >= active ? (g.seq - active) / 2 : 0;
}

/* Every bucket, into counts[DBPOOL_HIST_BUCKETS]. */
static void histogram_full(dbpool_coord *c, uint64_t *counts)
{
  uint64_t acquired, rel, waited = 0;
  totals(dbp_gate_snapshot(c->hdr), &acquired, &rel);
  uint64_t attempts = acquired + atomic_load(&c->hdr->total_timeouts);
  for (unsigned b = 1; b < DBPOOL_HIST_BUCKETS; b++) {
    counts[b] = atomic_load_explicit(&c->hdr->hist[b], memory_order_relaxed);
    waited += counts[b];
  }
  counts[0] = attempts > waited ? attempts - waited : 0;
}

int dbpool_coord_histogram(dbpool_coord *c, uint64_t *counts, size_t n)
{
  if (!c || (n && !counts)) return dbp_err(-EINVAL, "dbpool: histogram: NULL argument");
  uint64_t all[DBPOOL_HIST_BUCKETS];
  histogram_full(c, all);
  if (n) memcpy(counts, all, (n < DBPOOL_HIST_BUCKETS ? n : DBPOOL_HIST_BUCKETS) * sizeof *all);
  return DBPOOL_HIST_BUCKETS;
}

/* The wait below which a fraction q of all acquires fell: the middle of the
** bucket holding that rank, never above the largest wait seen. */
uint64_t dbp_percentile(const uint64_t *counts, uint64_t total, double q,
                        uint64_t max_ns)
{
  if (total == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)total + 0.999999), seen = 0;
  if (rank == 0) rank = 1;
  for (unsigned b = 0; b < DBPOOL_HIST_BUCKETS; b++) {
    seen += counts[b];
    if (seen < rank) continue;
    if (b == 0) return 0;
    uint64_t lo = dbpool_hist_lower_ns(b), hi = dbpool_hist_lower_ns(b + 1);
    uint64_t mid = lo + (hi - lo) / 2;
    return mid < max_ns ? mid : max_ns;
  }
  return max_ns;
}

/* Which process records belong to live processes, asked of the kernel at
** most once each per reading (one F_OFD_GETLK), and only after a record
** owned by it was read: a process that registered since the reading began
** is never taken for dead. A dead process's holders are never shown, even
** before anyone has reclaimed their slots. */
enum { LV_UNKNOWN = 0, LV_ALIVE, LV_DEAD };

typedef struct liveness_view {
  dbpool_coord *c;
  uint32_t phwm;
  uint8_t state[DBP_PROCESSES];
} liveness_view;

static void liveness_start(dbpool_coord *c, liveness_view *v)
{
  v->c = c;
  v->phwm = dbp_process_hwm(c->hdr);
  memset(v->state, LV_UNKNOWN, sizeof v->state);
}

static bool process_alive(liveness_view *v, uint32_t p)
{
  if (v->state[p] == LV_UNKNOWN)
    v->state[p] = atomic_load(&v->c->procs[p].state) == PROC_LIVE && dbp_process_alive(v->c, p)
                      ? LV_ALIVE : LV_DEAD;
  return v->state[p] == LV_ALIVE;
}

static bool owner_alive(liveness_view *v, uint32_t owner)
{
  return owner >= 1 && owner <= v->phwm && process_alive(v, owner - 1);
}

/* Is record r (in state *state as read) held or waited for by a live
** process? Asked after reading the record; a record whose owner looks dead
** but that changed meanwhile was let go normally (released, then its
** process left): not a dead process's, which stays as it was until
** reclaimed. */
static bool record_owner_alive(liveness_view *v, dbp_record *r, unsigned *state)
{
  uint64_t w = atomic_load_explicit(&r->word, memory_order_acquire);
  uint32_t owner = atomic_load_explicit(&r->owner, memory_order_acquire);
  *state = REC_STATE(w);
  if (*state == REC_FREE || owner_alive(v, owner)) return true;
  return atomic_load_explicit(&r->word, memory_order_acquire) != w ||
         atomic_load_explicit(&r->owner, memory_order_acquire) != owner;
}

static int stats_full(dbpool_coord *c, dbpool_host_stats *out);

int dbpool_coord_stats(dbpool_coord *c, dbpool_host_stats *out)
{
  if (!c || !out) return dbp_err(-EINVAL, "dbpool: stats: NULL argument");
  int rc = dbp_sized_check(out, DBP_V1_HOST_STATS, "dbpool_host_stats", "DBPOOL_INIT");
  dbpool_host_stats full;
  if (rc == 0) rc = stats_full(c, &full);
  if (rc == 0) dbp_sized_out(out, &full, sizeof full);
  return rc;
}

static int stats_full(dbpool_coord *c, dbpool_host_stats *out)
{
  dbp_header *h = c->hdr;
  if (!c->readonly) dbp_reap(c); /* a dead process's slots come back now */
  liveness_view *lv = malloc(sizeof *lv);
  if (!lv) return dbp_err(-ENOMEM, "dbpool: stats: out of memory");
  liveness_start(c, lv);
  memset(out, 0, sizeof *out);
  dbp_gate g = dbp_gate_snapshot(h);
  uint64_t released_all;
  totals(g, &out->total_acquired, &released_all);
  out->max_connections = g_max(g.bits);
  out->active = g_active(g.bits);
  out->peak_active = g_peak(g.bits);
  out->paused = (g.bits & G_PAUSED) != 0;
  out->waiting = atomic_load(&h->n_waiting);
  out->acquire_timeout_ms = atomic_load(&h->acquire_timeout_ms);
  out->total_reclaimed = atomic_load(&h->total_reclaimed);
  /* A reclaim between its gate op and its counter store: count it already,
  ** so that total_released never goes down. */
  uint64_t jseq = atomic_load(&h->reclaim_journal_seq);
  uint64_t jafter = atomic_load(&h->reclaim_journal_after);
  if (jseq && g.seq >= jseq && out->total_reclaimed < jafter) out->total_reclaimed = jafter;
  out->total_released = released_all > out->total_reclaimed
                            ? released_all - out->total_reclaimed : 0;
  out->total_timeouts = atomic_load(&h->total_timeouts);
  out->total_wait_ns = atomic_load(&h->total_wait_ns);
  out->max_wait_ns = atomic_load(&h->max_wait_ns);
  uint64_t attempts = out->total_acquired + out->total_timeouts;
  out->avg_wait_ns = attempts ? out->total_wait_ns / attempts : 0;
  out->created_at_ns = h->created_ns;

  uint32_t hwm = dbp_record_hwm(h), dead_held = 0, dead_waiting = 0;
  out->records_max = DBP_RECORDS;
  for (uint32_t i = 0; i < hwm; i++) {
    dbp_record *r = &c->recs[i];
    unsigned st;
    out->records_in_use += atomic_load_explicit(&r->owner, memory_order_relaxed) != 0;
    bool alive = record_owner_alive(lv, r, &st);
    if (st == REC_FREE) continue;
    if (st == REC_WAITING) dead_waiting += !alive;
    else if (!alive) dead_held++;
    else if (atomic_load_explicit(&r->flags, memory_order_relaxed) & REC_FLAG_IDLE)
      out->idle++;
  }
  /* A dead process's slots are reclaimed from the moment it is dead, for
  ** what anyone sees (total_acquired = total_released + total_reclaimed +
  ** active stays true), even before someone who may write takes them. */
  out->active = out->active > dead_held ? out->active - dead_held : 0;
  out->total_reclaimed += dead_held;
  for (uint32_t p = 0; p < lv->phwm; p++) /* those with holders */
    out->processes += atomic_load(&c->procs[p].n_records) > 0 && process_alive(lv, p);
  out->waiting = out->waiting > dead_waiting ? out->waiting - dead_waiting : 0;
  free(lv);

  uint64_t *counts = malloc(DBPOOL_HIST_BUCKETS * sizeof *counts);
  if (!counts) return dbp_err(-ENOMEM, "dbpool: stats: out of memory");
  histogram_full(c, counts);
  uint64_t total = 0;
  for (unsigned b = 0; b < DBPOOL_HIST_BUCKETS; b++) total += counts[b];
  out->p50_wait_ns = dbp_percentile(counts, total, 0.50, out->max_wait_ns);
  out->p95_wait_ns = dbp_percentile(counts, total, 0.95, out->max_wait_ns);
  out->p99_wait_ns = dbp_percentile(counts, total, 0.99, out->max_wait_ns);
  free(counts);
  return 0;
}

/* Who uses the holder records: "; most by pid P (name): N, ..." for the
** (up to) three processes owning the most, for the message of a pool whose
** records ran out. A snapshot without the lock; owners are untrusted. */
void dbp_record_users(dbpool_coord *c, char *buf, size_t cap)
{
  uint32_t *n = calloc(DBP_PROCESSES, sizeof *n);
  buf[0] = 0;
  if (!n) return;
  uint32_t hwm = dbp_record_hwm(c->hdr);
  for (uint32_t i = 0; i < hwm; i++) {
    uint32_t owner = atomic_load_explicit(&c->recs[i].owner, memory_order_relaxed);
    if (owner >= 1 && owner <= DBP_PROCESSES) n[owner - 1]++;
  }
  size_t off = 0;
  for (int k = 0; k < 3 && off < cap; k++) {
    uint32_t best = 0;
    for (uint32_t p = 1; p < DBP_PROCESSES; p++)
      if (n[p] > n[best]) best = p;
    if (n[best] == 0) break;
    char comm[DBPOOL_PROCESS_NAME_MAX];
    dbp_label_load(c->procs[best].comm, DBP_COMM_WORDS, comm);
    off += (size_t)snprintf(buf + off, cap - off, "%s pid %d (%s): %u",
                            k ? "," : "; most by", (int)atomic_load(&c->procs[best].pid),
                            comm, n[best]);
    n[best] = 0;
  }
  free(n);
}

typedef struct { uint64_t ticket; dbpool_holder_info info; } waiter_row;

static int by_ticket(const void *a, const void *b)
{
  const waiter_row *x = a, *y = b;
  return x->ticket < y->ticket ? -1 : x->ticket > y->ticket;
}

static void fill_info(dbpool_coord *c, uint32_t i, dbpool_holder_state state,
                      dbpool_holder_info *o)
{
  uint32_t phwm = dbp_process_hwm(c->hdr);
  dbp_record *r = &c->recs[i];
  memset(o, 0, sizeof *o);
  o->record = i;
  o->state = state;
  o->tid = atomic_load_explicit(&r->tid, memory_order_relaxed);
  o->since_ns = atomic_load_explicit(&r->since_ns, memory_order_relaxed);
  dbp_label_load(r->label, DBP_LABEL_WORDS, o->label);
  o->joined = (int)atomic_load_explicit(&r->joined, memory_order_relaxed);
  uint32_t owner = atomic_load(&r->owner);
  if (owner >= 1 && owner <= phwm) {
    dbp_process *p = &c->procs[owner - 1];
    o->pid = atomic_load(&p->pid);
    dbp_label_load(p->comm, DBP_COMM_WORDS, o->process);
    o->process_state = dbp_process_state(c, owner - 1);
  }
}

int dbp_holder_set_joined(dbpool_holder *hd, int joined)
{
  if (!hd || joined < DBPOOL_JOINED_API || joined > DBPOOL_JOINED_C_POOL)
    return dbp_err(-EINVAL, "dbpool: set_joined: no holder, or no such kind %d", joined);
  if (hd->fork_gen != dbp_fork_gen())
    return dbp_err(-EPERM, "dbpool: holder belongs to another process");
  atomic_store_explicit(&hd->rec->joined, (uint32_t)joined, memory_order_relaxed);
  return 0;
}

const char *dbpool_joined_name(int joined)
{
  static const char *const names[] = {"api", "load", "auto", "preload", "c-pool"};
  /* From shared memory: any value may come. */
  return joined >= 0 && joined < (int)(sizeof names / sizeof *names) ? names[joined]
                                                                     : "unknown";
}

const char *dbpool_process_state_name(int state)
{
  static const char *const names[] = {"running", "stopped", "elsewhere"};
  return state >= 0 && state < (int)(sizeof names / sizeof *names) ? names[state] : "unknown";
}

const char *dbpool_file_state_name(int state)
{
  static const char *const names[] = {"ok", "replaced", "gone", "removed", "unknown"};
  return state >= 0 && state < (int)(sizeof names / sizeof *names) ? names[state] : "unknown";
}

int dbpool_coord_holders(dbpool_coord *c, dbpool_holder_info *buf, size_t cap,
                         size_t elem_size)
{
  if (!c || (cap && !buf)) return dbp_err(-EINVAL, "dbpool: holders: NULL argument");
  int rc = dbp_elem_check(elem_size, DBP_V1_HOLDER_INFO, "dbpool_holder_info");
  if (rc) return rc;
  uint32_t hwm = dbp_record_hwm(c->hdr);
  size_t n = 0, nw = 0;
  waiter_row *w = malloc((size_t)hwm * sizeof *w + 1);
  liveness_view *lv = malloc(sizeof *lv);
  if (!w || !lv) {
    free(w);
    free(lv);
    return dbp_err(-ENOMEM, "dbpool: holders: out of memory");
  }
  liveness_start(c, lv);
  for (uint32_t i = 0; i < hwm; i++) {
    dbp_record *r = &c->recs[i];
    unsigned st;
    if (!record_owner_alive(lv, r, &st))
      continue; /* a dead process's: not a holder, reclaimed or not */
    if (st == REC_HELD) {
      dbpool_holder_state hs =
          (atomic_load_explicit(&r->flags, memory_order_relaxed) & REC_FLAG_IDLE)
              ? DBPOOL_HOLDER_IDLE : DBPOOL_HOLDER_ACTIVE;
      if (n < cap) {
        dbpool_holder_info info;
        fill_info(c, i, hs, &info);
        dbp_elem_put(buf, n, elem_size, &info, sizeof info);
      }
      n++;
    } else if (st == REC_WAITING) {
      w[nw].ticket = atomic_load_explicit(&r->ticket, memory_order_relaxed);
      fill_info(c, i, DBPOOL_HOLDER_WAITING, &w[nw].info);
      nw++;
    }
  }
  qsort(w, nw, sizeof *w, by_ticket);
  for (size_t k = 0; k < nw; k++, n++)
    if (n < cap) dbp_elem_put(buf, n, elem_size, &w[k].info, sizeof w[k].info);
  free(w);
  free(lv);
  return n > (size_t)0x7fffffff ? 0x7fffffff : (int)n; /* GCOVR_EXCL_BR_LINE: n <= DBP_RECORDS */
}

unsigned dbp_coord_waiting(const dbpool_coord *c)
{
  return c ? atomic_load_explicit(&c->hdr->n_waiting, memory_order_acquire) : 0;
}

int dbp_coord_wait_for_waiter(dbpool_coord *c, int timeout_ms)
{
  if (!c) return 0;
  dbp_header *h = c->hdr;
  if (atomic_load(&h->n_waiting) > 0) return 1;
  if (timeout_ms == 0 || c->readonly) return 0;
  int64_t deadline = timeout_ms < 0 ? -1 : dbp_mono_ns() + (int64_t)timeout_ms * 1000000;
  atomic_fetch_add(&h->event_listeners, 1);
  int someone = 0;
  uint32_t v = atomic_load(&h->waiter_event);
  someone = atomic_load(&h->n_waiting) > 0;
  if (!someone) {
    dbp_futex_wait(&h->waiter_event, v, deadline, DBP_FUTEX_SHARED); /* any bump ends it */
    someone = atomic_load(&h->n_waiting) > 0;
  }
  atomic_fetch_sub(&h->event_listeners, 1);
  return someone;
}

void dbp_coord_wake_listeners(dbpool_coord *c)
{
  if (!c || c->readonly) return;
  atomic_fetch_add(&c->hdr->waiter_event, 1);
  dbp_futex_wake(&c->hdr->waiter_event, INT_MAX, DBP_FUTEX_SHARED);
}
