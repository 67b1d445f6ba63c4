/*
** writer.c -- the writer queue: whose turn it is to write a WAL database,
** host-wide, in arrival order, with barging while nobody starves.
**
** The caller (ext/writer_gate.c) never blocks SQLite where it holds locks:
** it asks for the turn when SQLite asks for its write lock and, when the
** turn is taken, answers SQLITE_BUSY; the waiting happens later, where
** SQLite's busy handler sleeps (dbp_wq_wait). Layout: writer_layout.h.
**
** Barging: while no waiter has waited writer_starvation_ms and the head of
** the queue has not been beaten twice, a free turn goes to whoever asks
** first (the releasing process, already on a CPU, usually): a hand-off to a
** sleeping waiter costs a wake-up, ~2x a transaction here. Past the
** threshold the turn is handed to the head directly (strict FIFO).
**
** Crash safety: a turn or ticket whose owner died is skipped by whoever
** checks next (waiters check every DBP_POLL_MS, at most one check per
** WQ_CHECK_MIN_MS pool-wide); a granted turn nobody comes for, and a ticket
** whose waiter stopped retrying, expire after WQ_CLAIM_MS.
*/
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <string.h>

#include "writer.h"

#define WQ_CLAIM_MS 50     /* a waiter must show up within this after its sleep */
#define WQ_GRANT_MS 5      /* ... and a grantee within this of the grant */
#define WQ_UNUSED_MS 10    /* the place kept after a turn used for nothing */
#define WQ_REPLACE_MS 1000 /* an expired place is given back within this */
#define WQ_CHECK_MIN_MS 10 /* at most one dead-owner check per this */
#define WQ_BEATEN_MAX 2    /* woken for a free turn and beaten: then strict */
#define WQ_SPIN_US 2000    /* an early-woken waiter spins this long at most */
#define WQ_STRICT_GAP_DIV 16 /* strict hand-offs at most every starvation/16 */

static dbp_writerq *wq(dbpool_coord *c) { return &c->hdr->writerq; }
static int64_t ms_ns(int64_t ms) { return ms * 1000000; }

void dbp_wq_init(dbp_header *h)
{
  dbp_writerq *q = &h->writerq;
  atomic_store(&q->turn, WQ_T_MAKE(0, WQ_FREE, DBP_WQ_NONE, 0));
  atomic_store(&q->next_ticket, 1);
  atomic_store(&q->oldest_ns, INT64_MAX);
}

int64_t dbp_wq_setting_read(const dbp_header *h, int setting)
{
  dbp_writerq *q = (dbp_writerq *)&h->writerq;
  if (setting == DBPOOL_SETTING_WRITER_QUEUE) return atomic_load(&q->enabled) != 0;
  return atomic_load(&q->starve_ms);
}

void dbp_wq_setting_init(dbp_header *h, int setting, int64_t value)
{
  if (setting == DBPOOL_SETTING_WRITER_QUEUE)
    atomic_store(&h->writerq.enabled, value ? 1u : 0u);
  else
    atomic_store(&h->writerq.starve_ms, (uint32_t)value);
}

static void wake_entry(dbp_writerq *q, uint32_t i);

int dbp_wq_set(dbpool_coord *c, int setting, int64_t value)
{
  dbp_writerq *q = wq(c);
  if (setting == DBPOOL_SETTING_WRITER_STARVATION_MS) {
    atomic_store(&q->starve_ms, (uint32_t)value);
    return 0;
  }
  atomic_store(&q->enabled, value ? 1u : 0u);
  if (!value) { /* waiters stop waiting: their next try goes to SQLite */
    uint32_t hwm = atomic_load(&q->entry_hwm);
    for (uint32_t i = 0; i < hwm && i < DBP_WQ_ENTRIES; i++)
      if (WQE_KIND(atomic_load(&q->entries[i].state)) == WQE_WAITING) wake_entry(q, i);
  }
  return 0;
}

void dbp_wq_note_journal(dbpool_coord *c, unsigned kind)
{
  if (c->readonly) return;
  if (atomic_load_explicit(&wq(c)->journal, memory_order_relaxed) != kind)
    atomic_store_explicit(&wq(c)->journal, kind, memory_order_relaxed);
}

/* ------------------------------------------------------------ identity */

/* Our process record in c, if this process is registered there (it is
** while it has a holder: every connection of the extension has one). */
static bool own_record(dbpool_coord *c, uint32_t *proc, uint32_t *gen)
{
  int p = __atomic_load_n(&c->proc_idx, __ATOMIC_RELAXED);
  if (p < 0 || __atomic_load_n(&c->proc_fork_gen, __ATOMIC_RELAXED) != dbp_fork_gen())
    return false;
  *proc = (uint32_t)p + 1;
  *gen = __atomic_load_n(&c->proc_gen, __ATOMIC_RELAXED);
  return true;
}

/* The writer queue's one question about liveness: has the process that
** owns entry e certainly exited? Its process record says so: reaped or
** reused (another generation), or its liveness lock is gone (liveness.c).
** An entry names no valid record only if it is garbage. */
static bool owner_gone(dbpool_coord *c, const dbp_wq_entry *e)
{
  uint32_t proc = atomic_load(&e->proc);
  if (proc < 1 || proc > dbp_process_hwm(c->hdr)) return true;
  unsigned p = proc - 1;
  if (dbp_is_own_record(c, p)) return false;
  dbp_process *pr = &c->procs[p];
  if (atomic_load(&pr->state) != PROC_LIVE ||
      atomic_load(&pr->gen) != atomic_load(&e->proc_gen))
    return true;
  return !dbp_process_alive(c, p);
}

static bool same_thread(const dbp_wq_entry *e)
{
  return atomic_load_explicit(&e->pid, memory_order_relaxed) == dbp_pid() &&
         atomic_load_explicit(&e->tid, memory_order_relaxed) == dbp_tid();
}

/* ------------------------------------------------------------- entries */

static uint32_t entry_hwm(dbp_writerq *q)
{
  uint32_t v = atomic_load_explicit(&q->entry_hwm, memory_order_acquire);
  return v < DBP_WQ_ENTRIES ? v : DBP_WQ_ENTRIES;
}

/* Our entry, or NULL if it was taken from us (or never taken). */
static dbp_wq_entry *entry_of(dbpool_coord *c, const dbp_wq_handle *h)
{
  if (h->idx >= DBP_WQ_ENTRIES) return NULL;
  dbp_wq_entry *e = &wq(c)->entries[h->idx];
  uint64_t w = atomic_load_explicit(&e->state, memory_order_acquire);
  return WQE_GEN(w) == h->gen && WQE_KIND(w) != WQE_FREE ? e : NULL;
}

static bool claim_entry(dbpool_coord *c, dbp_wq_handle *h, uint32_t i,
                        uint32_t proc, uint32_t proc_gen)
{
  dbp_wq_entry *e = &wq(c)->entries[i];
  uint64_t w = atomic_load(&e->state);
  if (WQE_KIND(w) != WQE_FREE) return false;
  uint64_t n = WQE_WORD(WQE_GEN(w) + 1, WQE_IDLE);
  if (!atomic_compare_exchange_strong(&e->state, &w, n)) return false;
  atomic_store(&e->proc, proc);
  atomic_store(&e->proc_gen, proc_gen);
  atomic_store(&e->pid, dbp_pid());
  atomic_store(&e->tid, dbp_tid());
  atomic_store(&e->record, h->record);
  atomic_store(&e->losses, 0);
  atomic_store(&e->expired_ns, 0);
  h->idx = i;
  h->gen = WQE_GEN(n);
  return true;
}

/* Free entries of dead processes, for a pool whose table is full. */
static void reclaim_dead_entries(dbpool_coord *c)
{
  dbp_writerq *q = wq(c);
  uint32_t hwm = entry_hwm(q);
  for (uint32_t i = 0; i < hwm; i++) {
    dbp_wq_entry *e = &q->entries[i];
    uint64_t w = atomic_load(&e->state);
    if (WQE_KIND(w) != WQE_IDLE || !owner_gone(c, e)) continue;
    atomic_compare_exchange_strong(&e->state, &w, WQE_WORD(WQE_GEN(w), WQE_FREE));
  }
}

/* A connection takes an entry at its first write. Only a process
** registered in the pool (one with a holder there: every connection of
** the extension to its main database) can queue: its liveness is what
** lets others skip its turn if it dies. Others (a connection to an
** ATTACHed database) go straight to SQLite. */
static int take_entry(dbpool_coord *c, dbp_wq_handle *h)
{
  dbp_writerq *q = wq(c);
  uint32_t proc, gen;
  if (!own_record(c, &proc, &gen)) return -ENOENT;
  for (int attempt = 0; attempt < 2; attempt++) {
    uint32_t hwm = entry_hwm(q);
    for (uint32_t i = 0; i < hwm; i++)
      if (claim_entry(c, h, i, proc, gen)) return 0;
    while (hwm < DBP_WQ_ENTRIES) {
      uint32_t want = hwm;
      if (atomic_compare_exchange_strong(&q->entry_hwm, &want, hwm + 1) &&
          claim_entry(c, h, hwm, proc, gen))
        return 0;
      hwm = entry_hwm(q);
    }
    reclaim_dead_entries(c);
  }
  return -ENOSPC;
}

/* The oldest-waiter hint lets the hot path (every write) skip scanning the
** entries unless a strict hand-off may be due. It is only a hint: too old
** costs a scan, too new delays a hand-off until the next recount (checks
** recount it every poll). */
static void lower_oldest(dbp_writerq *q, int64_t since)
{
  int64_t o = atomic_load(&q->oldest_ns);
  while (since < o && !atomic_compare_exchange_weak(&q->oldest_ns, &o, since)) {
  }
}

static void recount_oldest(dbp_writerq *q)
{
  int64_t oldest = INT64_MAX;
  uint32_t hwm = entry_hwm(q);
  for (uint32_t i = 0; i < hwm; i++) {
    dbp_wq_entry *e = &q->entries[i];
    if (WQE_KIND(atomic_load(&e->state)) != WQE_WAITING) continue;
    int64_t since = atomic_load(&e->since_ns);
    if (since < oldest) oldest = since;
  }
  atomic_store(&q->oldest_ns, oldest);
}

/* Leave the queue: WAITING -> IDLE. Returns the wait if we did leave. */
static bool leave_queue(dbp_writerq *q, dbp_wq_entry *e)
{
  uint64_t w = atomic_load(&e->state);
  while (WQE_KIND(w) == WQE_WAITING)
    if (atomic_compare_exchange_weak(&e->state, &w, WQE_WORD(WQE_GEN(w), WQE_IDLE))) {
      uint32_t n = atomic_load(&q->n_waiting);
      while (n > 0 && !atomic_compare_exchange_weak(&q->n_waiting, &n, n - 1)) {
      }
      if (atomic_load(&e->since_ns) <= atomic_load(&q->oldest_ns)) recount_oldest(q);
      return true;
    }
  return false;
}

/* Take a place (keep ours if we have one). A waiter whose place expired
** because it was slow to come back (descheduled on a loaded machine, say)
** and that asks again within WQ_REPLACE_MS gets its old place back: the
** expiry is there so that an absent waiter does not stall the queue, not to
** send a slow one to the back. */
static void enqueue(dbp_writerq *q, dbp_wq_entry *e, int64_t now)
{
  uint64_t w = atomic_load(&e->state);
  atomic_store(&e->alive_ns, now + ms_ns(WQ_CLAIM_MS));
  if (WQE_KIND(w) == WQE_WAITING) return;
  int64_t expired = atomic_load(&e->expired_ns);
  atomic_store(&e->expired_ns, 0);
  if (!expired || now - expired > ms_ns(WQ_REPLACE_MS) || expired > now) {
    atomic_store(&e->ticket, atomic_fetch_add(&q->next_ticket, 1));
    atomic_store(&e->since_ns, now);
  }
  atomic_store(&e->losses, 0);
  if (atomic_compare_exchange_strong(&e->state, &w, WQE_WORD(WQE_GEN(w), WQE_WAITING))) {
    atomic_fetch_add(&q->n_waiting, 1);
    lower_oldest(q, atomic_load(&e->since_ns));
  }
}

/* ------------------------------------------------------------ the queue */

typedef struct head_info {
  uint32_t idx; /* DBP_WQ_NONE: nobody waits */
  int64_t since_ns;
  uint32_t losses;
} head_info;

/* The queue's head: the live waiting entry with the smallest ticket
** (entries whose waiter stopped coming back are passed over; checks
** remove them). A read-only scan. */
static head_info find_head(dbp_writerq *q, int64_t now, uint32_t exclude)
{
  head_info hd = {DBP_WQ_NONE, 0, 0};
  uint64_t best = UINT64_MAX;
  uint32_t hwm = entry_hwm(q);
  for (uint32_t i = 0; i < hwm; i++) {
    dbp_wq_entry *e = &q->entries[i];
    if (i == exclude ||
        WQE_KIND(atomic_load_explicit(&e->state, memory_order_acquire)) != WQE_WAITING)
      continue;
    if (atomic_load_explicit(&e->alive_ns, memory_order_relaxed) < now) continue;
    uint64_t t = atomic_load_explicit(&e->ticket, memory_order_relaxed);
    if (t < best) {
      best = t;
      hd.idx = i;
      hd.since_ns = atomic_load_explicit(&e->since_ns, memory_order_relaxed);
      hd.losses = atomic_load_explicit(&e->losses, memory_order_relaxed);
    }
  }
  return hd;
}

static int64_t starve_ns(dbp_writerq *q)
{
  uint32_t ms = atomic_load_explicit(&q->starve_ms, memory_order_relaxed);
  return ms_ns(ms <= DBPOOL_WRITER_STARVATION_LIMIT ? ms : DBPOOL_WRITER_STARVATION_LIMIT);
}

static bool starving(dbp_writerq *q, head_info hd, int64_t now)
{
  return hd.idx != DBP_WQ_NONE &&
         (now - hd.since_ns >= starve_ns(q) || hd.losses >= WQ_BEATEN_MAX);
}

/* A strict hand-off is due: the head starves, and the last strict hand-off
** was at least starvation/WQ_STRICT_GAP_DIV ago. A hand-off to a sleeping
** waiter costs a wake-up (0.1-0.2 ms here, 3-5 transactions); spacing them
** keeps the runner's throughput while every starving waiter still gets its
** turn within starvation + (queue length) * gap. */
static bool gap_passed(dbp_writerq *q, int64_t now)
{
  int64_t last = atomic_load_explicit(&q->strict_ns, memory_order_relaxed);
  return now - last >= starve_ns(q) / WQ_STRICT_GAP_DIV || last > now;
}

static bool strict_due(dbp_writerq *q, head_info hd, int64_t now)
{
  return starving(q, hd, now) && gap_passed(q, now);
}

/* Could a strict hand-off be due? Without scanning: someone waits, the
** oldest waiter (hint) starves, and the gap has passed. */
static bool maybe_due(dbp_writerq *q, int64_t now)
{
  if (atomic_load_explicit(&q->n_waiting, memory_order_acquire) == 0) return false;
  int64_t oldest = atomic_load_explicit(&q->oldest_ns, memory_order_relaxed);
  if (oldest != 0 && now - oldest < starve_ns(q)) return false;
  return gap_passed(q, now);
}

static void wake_entry(dbp_writerq *q, uint32_t i)
{
  if (i >= DBP_WQ_ENTRIES) return;
  atomic_fetch_add_explicit(&q->entries[i].wake, 1, memory_order_release);
  dbp_futex_wake(&q->entries[i].wake, INT_MAX, DBP_FUTEX_SHARED);
}

/* Hand the turn, t until now, to the head (strict), waking it. */
static bool grant_head(dbp_writerq *q, uint64_t t, head_info hd, int64_t now)
{
  atomic_store(&q->turn_ns, now);
  if (!atomic_compare_exchange_strong(&q->turn, &t, WQ_T_MAKE(t, WQ_GRANTED, hd.idx, 1)))
    return false;
  atomic_store(&q->strict_ns, now);
  atomic_fetch_add_explicit(&q->strict_grants, 1, memory_order_relaxed);
  wake_entry(q, hd.idx);
  return true;
}

/* May entry idx take the free turn t now? Anyone may (barging) unless a
** strict hand-off is due; then the turn goes to the head (*handed). */
static bool may_take(dbp_writerq *q, uint64_t t, uint32_t idx, int64_t now, bool *handed)
{
  *handed = false;
  if (!maybe_due(q, now)) return true;
  head_info hd = find_head(q, now, DBP_WQ_NONE);
  if (hd.idx == DBP_WQ_NONE || hd.idx == idx || !strict_due(q, hd, now)) return true;
  *handed = grant_head(q, t, hd, now);
  return false;
}

/* Move the turn on from t: to the head if it starves (strict hand-off, the
** head is woken), else free for whoever asks first. Waiters are not woken
** for a free turn: a waiter woken to find it taken again costs a context
** switch per transaction (measured: 0.5x the throughput at 32 processes);
** they find it when their busy sleep ends. wake: wake the head anyway (the
** turn comes back from a dead or absent owner). exclude: an entry that must
** not get it (the one whose grant expired). False if t changed. */
static bool pass_turn(dbpool_coord *c, uint64_t t, int64_t now, uint32_t exclude,
                      bool wake)
{
  dbp_writerq *q = wq(c);
  head_info hd = {DBP_WQ_NONE, 0, 0};
  if (wake ? atomic_load(&q->n_waiting) > 0 : maybe_due(q, now))
    hd = find_head(q, now, exclude);
  if (strict_due(q, hd, now)) return grant_head(q, t, hd, now);
  if (!atomic_compare_exchange_strong(&q->turn, &t, WQ_T_MAKE(t, WQ_FREE, DBP_WQ_NONE, 0)))
    return false;
  if (wake) wake_entry(q, hd.idx);
  return true;
}

/* A grant expires when neither the grant nor its grantee's last sign of
** life (alive_ns: a waiter sets it past the end of its sleep) is recent. */
static bool grant_expired(dbp_writerq *q, uint64_t t, int64_t now)
{
  uint32_t j = WQ_T_IDX(t);
  if (j >= DBP_WQ_ENTRIES) return true; /* garbage */
  int64_t until = atomic_load(&q->turn_ns) + ms_ns(WQ_GRANT_MS);
  int64_t alive = atomic_load(&q->entries[j].alive_ns);
  return now > (alive > until ? alive : until);
}

/* The grantee of t did not come: pass the turn on and drop its ticket. */
static void expire_grant(dbpool_coord *c, uint64_t t, int64_t now)
{
  dbp_writerq *q = wq(c);
  uint32_t j = WQ_T_IDX(t);
  if (!pass_turn(c, t, now, j, true)) return;
  if (j < DBP_WQ_ENTRIES && leave_queue(q, &q->entries[j]))
    atomic_store(&q->entries[j].expired_ns, now);
  atomic_fetch_add_explicit(&q->expired, 1, memory_order_relaxed);
}

/* Skip turns and tickets of dead processes, and tickets of waiters that
** stopped coming back. Any process may do this at any time. */
static void check_queue(dbpool_coord *c)
{
  dbp_writerq *q = wq(c);
  int64_t now = dbp_mono_ns();
  uint64_t t = atomic_load(&q->turn);
  uint32_t j = WQ_T_IDX(t);
  if (WQ_T_KIND(t) != WQ_FREE) {
    dbp_wq_entry *e = j < DBP_WQ_ENTRIES ? &q->entries[j] : NULL;
    uint64_t w = e ? atomic_load(&e->state) : 0;
    if (!e || WQE_KIND(w) == WQE_FREE || owner_gone(c, e)) {
      if (pass_turn(c, t, now, j, true)) {
        atomic_fetch_add(&q->skipped_dead, 1);
        if (e && WQE_KIND(w) != WQE_FREE && owner_gone(c, e)) {
          leave_queue(q, e);
          uint64_t w2 = atomic_load(&e->state);
          atomic_compare_exchange_strong(&e->state, &w2,
                                         WQE_WORD(WQE_GEN(w2), WQE_FREE));
        }
      }
    } else if (WQ_T_KIND(t) == WQ_GRANTED && grant_expired(q, t, now)) {
      expire_grant(c, t, now);
    }
  }
  uint32_t hwm = entry_hwm(q), waiting = 0;
  for (uint32_t i = 0; i < hwm; i++) {
    dbp_wq_entry *e = &q->entries[i];
    uint64_t w = atomic_load(&e->state);
    if (WQE_KIND(w) != WQE_WAITING) continue;
    uint64_t cur = atomic_load(&q->turn);
    bool granted = WQ_T_IDX(cur) == i && WQ_T_KIND(cur) != WQ_FREE;
    if (!granted && owner_gone(c, e)) {
      if (leave_queue(q, e)) atomic_fetch_add(&q->skipped_dead, 1);
      uint64_t w2 = atomic_load(&e->state);
      atomic_compare_exchange_strong(&e->state, &w2, WQE_WORD(WQE_GEN(w2), WQE_FREE));
    } else if (!granted && atomic_load(&e->alive_ns) < now) {
      if (leave_queue(q, e)) {
        atomic_store(&e->expired_ns, now);
        atomic_fetch_add(&q->expired, 1);
      }
    } else {
      waiting++;
    }
  }
  /* n_waiting is a hint for the fast path; repair drift (a process killed
  ** between changing an entry and the count). */
  uint32_t n = atomic_load(&q->n_waiting);
  if (n != waiting) atomic_compare_exchange_strong(&q->n_waiting, &n, waiting);
  recount_oldest(q);
}

/* Only waiters check, and a read-only attachment never waits (queue_on). */
static void maybe_check(dbpool_coord *c)
{
  dbp_writerq *q = wq(c);
  int64_t now = dbp_mono_ns(), last = atomic_load(&q->last_check_ns);
  uint64_t age = (uint64_t)now - (uint64_t)last;
  if (last <= now && age < (uint64_t)ms_ns(WQ_CHECK_MIN_MS)) return;
  if (!atomic_compare_exchange_strong(&q->last_check_ns, &last, now)) return;
  check_queue(c);
}

/* ---------------------------------------------------------- the calls */

static bool queue_on(dbpool_coord *c)
{
  return !c->readonly && atomic_load_explicit(&wq(c)->enabled, memory_order_relaxed);
}

int dbp_wq_acquire(dbpool_coord *c, dbp_wq_handle *h, bool woken)
{
  if (!queue_on(c)) return DBP_WQ_OFF;
  dbp_writerq *q = wq(c);
  dbp_wq_entry *e = entry_of(c, h);
  if (!e) {
    if (take_entry(c, h) != 0) return DBP_WQ_OFF; /* table full: don't queue */
    e = &q->entries[h->idx];
  }
  if (atomic_load_explicit(&e->tid, memory_order_relaxed) != dbp_tid())
    atomic_store_explicit(&e->tid, dbp_tid(), memory_order_relaxed);
  int64_t now = dbp_mono_ns();
  for (int tries = 0; tries < 64; tries++) {
    uint64_t t = atomic_load(&q->turn);
    uint32_t j = WQ_T_IDX(t);
    unsigned k = WQ_T_KIND(t);
    if (j == h->idx && k == WQ_HELD) return DBP_WQ_GO;
    if (j == h->idx && k == WQ_GRANTED) {
      if (atomic_compare_exchange_weak(&q->turn, &t,
                                       WQ_T_MAKE(t, WQ_HELD, j, t & WQ_T_STRICT))) {
        int64_t g = atomic_load(&q->turn_ns);
        if (now > g) atomic_fetch_add_explicit(&q->handoff_ns, (uint64_t)(now - g),
                                               memory_order_relaxed);
        return DBP_WQ_GO;
      }
      continue;
    }
    if (k != WQ_FREE && j < DBP_WQ_ENTRIES && same_thread(&q->entries[j]))
      return DBP_WQ_SELF; /* waiting would wait on ourselves */
    if (k == WQ_FREE) {
      bool handed;
      if (!may_take(q, t, h->idx, now, &handed)) {
        if (handed) break;
        continue;
      }
      if (atomic_compare_exchange_weak(&q->turn, &t, WQ_T_MAKE(t, WQ_HELD, h->idx, 0)))
        return DBP_WQ_GO;
      continue;
    }
    if (k == WQ_GRANTED && grant_expired(q, t, now)) {
      expire_grant(c, t, now);
      continue;
    }
    break;
  }
  if (woken && WQE_KIND(atomic_load(&e->state)) == WQE_WAITING &&
      atomic_fetch_add(&e->losses, 1) + 1 >= WQ_BEATEN_MAX)
    lower_oldest(q, now - starve_ns(q)); /* beaten twice: starving now */
  enqueue(q, e, now);
  return DBP_WQ_WAIT;
}

static void record_write(dbp_writerq *q, dbp_wq_entry *e, bool waited, int64_t now)
{
  atomic_fetch_add_explicit(&q->total_writes, 1, memory_order_relaxed);
  if (!waited) return;
  int64_t since = atomic_load(&e->since_ns);
  uint64_t ns = now > since ? (uint64_t)(now - since) : 0;
  atomic_fetch_add_explicit(&q->total_waits, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&q->total_wait_ns, ns, memory_order_relaxed);
  unsigned b = dbp_hist_bucket(ns);
  if (b > 0) atomic_fetch_add_explicit(&q->hist[b], 1, memory_order_relaxed);
  uint64_t m = atomic_load_explicit(&q->max_wait_ns, memory_order_relaxed);
  while (ns > m && !atomic_compare_exchange_weak(&q->max_wait_ns, &m, ns)) {
  }
}

void dbp_wq_taken(dbpool_coord *c, dbp_wq_handle *h)
{
  dbp_wq_entry *e = entry_of(c, h);
  if (!e) return;
  dbp_writerq *q = wq(c);
  int64_t now = dbp_mono_ns();
  /* If our release will hand the turn to the head, wake it now: it spins
  ** (yielding) until we let go, and its wake-up (0.1-0.4 ms here, several
  ** transactions) overlaps our transaction instead of following it. */
  if (maybe_due(q, now)) {
    head_info hd = find_head(q, now, h->idx);
    if (strict_due(q, hd, now)) wake_entry(q, hd.idx);
  }
}

/* Woken early while another writes: spin (yielding the CPU to anyone who
** needs it) until the turn comes, for at most WQ_SPIN_US. */
static void spin_for_turn(dbp_writerq *q, uint32_t idx)
{
  int64_t until = dbp_mono_ns() + (int64_t)WQ_SPIN_US * 1000;
  for (;;) {
    uint64_t t = atomic_load(&q->turn);
    if (WQ_T_KIND(t) == WQ_FREE || WQ_T_IDX(t) == idx) return;
    if (dbp_mono_ns() >= until) return;
    sched_yield();
  }
}

void dbp_wq_lock_busy(dbpool_coord *c, dbp_wq_handle *h, int64_t until_ns)
{
  dbp_wq_entry *e = entry_of(c, h);
  if (!e) return;
  dbp_writerq *q = wq(c);
  int64_t now = dbp_mono_ns();
  enqueue(q, e, now); /* keep (or take) our place: the wait counts */
  atomic_store(&e->alive_ns, until_ns + ms_ns(WQ_CLAIM_MS));
  uint64_t t = atomic_load(&q->turn);
  while (WQ_T_IDX(t) == h->idx && WQ_T_KIND(t) == WQ_HELD) {
    atomic_store(&q->turn_ns, now);
    if (atomic_compare_exchange_weak(&q->turn, &t,
                                     WQ_T_MAKE(t, WQ_GRANTED, h->idx, t & WQ_T_STRICT)))
      break;
  }
}

void dbp_wq_done(dbpool_coord *c, dbp_wq_handle *h, bool wrote)
{
  dbp_wq_entry *e = entry_of(c, h);
  if (e) {
    dbp_writerq *q = wq(c);
    int64_t now = dbp_mono_ns();
    if (wrote) {
      bool waited = leave_queue(q, e);
      atomic_store_explicit(&e->losses, 0, memory_order_relaxed);
      record_write(q, e, waited, now);
    } else {
      /* Nothing was written: SQLite found its snapshot stale and will
      ** retry (keep our place, briefly), or the transaction was empty. */
      enqueue(q, e, now);
      atomic_store(&e->alive_ns, now + ms_ns(WQ_UNUSED_MS));
    }
  }
  dbp_wq_release(c, h);
}

void dbp_wq_release(dbpool_coord *c, dbp_wq_handle *h)
{
  if (h->idx >= DBP_WQ_ENTRIES) return;
  dbp_writerq *q = wq(c);
  int64_t now = 0;
  for (;;) {
    uint64_t t = atomic_load(&q->turn);
    if (WQ_T_IDX(t) != h->idx || WQ_T_KIND(t) == WQ_FREE) return;
    if (!now) now = dbp_mono_ns();
    if (pass_turn(c, t, now, h->idx, false)) return;
  }
}

void dbp_wq_requeue(dbpool_coord *c, dbp_wq_handle *h)
{
  dbp_wq_entry *e = entry_of(c, h);
  if (e) enqueue(wq(c), e, dbp_mono_ns());
}

bool dbp_wq_queued(dbpool_coord *c, const dbp_wq_handle *h)
{
  dbp_wq_entry *e = entry_of(c, h);
  if (!e) return false;
  uint64_t t = atomic_load(&wq(c)->turn);
  if (WQ_T_IDX(t) == h->idx && WQ_T_KIND(t) == WQ_GRANTED) return true;
  return WQE_KIND(atomic_load(&e->state)) == WQE_WAITING &&
         atomic_load(&e->alive_ns) >= dbp_mono_ns();
}

int dbp_wq_wait(dbpool_coord *c, dbp_wq_handle *h, int64_t deadline_ns, bool reserve)
{
  dbp_writerq *q = wq(c);
  dbp_wq_entry *e = entry_of(c, h);
  if (!e) return DBP_WQ_GONE;
  bool first = true;
  for (;;) {
    uint32_t v = atomic_load_explicit(&e->wake, memory_order_acquire);
    uint64_t t = atomic_load(&q->turn);
    int64_t now = dbp_mono_ns();
    if (!queue_on(c)) return DBP_WQ_READY;
    if (WQ_T_IDX(t) == h->idx && WQ_T_KIND(t) != WQ_FREE) {
      atomic_store(&e->alive_ns, now + ms_ns(WQ_CLAIM_MS));
      return DBP_WQ_READY;
    }
    if (WQE_KIND(atomic_load(&e->state)) != WQE_WAITING) return DBP_WQ_GONE;
    if (WQ_T_KIND(t) != WQ_FREE && WQ_T_IDX(t) < DBP_WQ_ENTRIES &&
        same_thread(&q->entries[WQ_T_IDX(t)]))
      return DBP_WQ_OWN; /* our own thread has it: waiting would wait on itself */
    bool handed = false;
    if (WQ_T_KIND(t) == WQ_FREE && may_take(q, t, h->idx, now, &handed)) {
      if (!reserve) return DBP_WQ_READY;
      atomic_store(&q->turn_ns, now);
      atomic_store(&e->alive_ns, now + ms_ns(WQ_CLAIM_MS));
      if (atomic_compare_exchange_strong(&q->turn, &t,
                                         WQ_T_MAKE(t, WQ_GRANTED, h->idx, 0)))
        return DBP_WQ_READY;
      continue;
    }
    if (WQ_T_KIND(t) == WQ_FREE && !handed) continue; /* lost a race: look again */
    if (WQ_T_KIND(t) == WQ_GRANTED && grant_expired(q, t, now)) {
      expire_grant(c, t, now);
      continue;
    }
    if (now >= deadline_ns) return DBP_WQ_TIMEOUT;
    atomic_store(&e->alive_ns, deadline_ns + ms_ns(WQ_CLAIM_MS));
    /* A holder that has kept the turn for a poll interval may be dead. */
    if (first && now - atomic_load(&q->turn_ns) > ms_ns(DBP_POLL_MS)) maybe_check(c);
    first = false;
    int64_t slice = now + ms_ns(DBP_POLL_MS);
    if (slice > deadline_ns) slice = deadline_ns;
    int rc = dbp_futex_wait(&e->wake, v, slice, DBP_FUTEX_SHARED);
    if (rc == -ETIMEDOUT)
      maybe_check(c);
    else if (rc < 0)
      return DBP_WQ_TIMEOUT; /* the kernel refused the wait: never spin */
    else
      spin_for_turn(q, h->idx);
  }
}

void dbp_wq_drop(dbpool_coord *c, dbp_wq_handle *h)
{
  dbp_wq_entry *e = entry_of(c, h);
  if (!e) return;
  dbp_wq_release(c, h);
  leave_queue(wq(c), e);
  uint64_t w = atomic_load(&e->state);
  if (WQE_GEN(w) == h->gen)
    atomic_compare_exchange_strong(&e->state, &w, WQE_WORD(WQE_GEN(w), WQE_FREE));
  h->idx = DBP_WQ_NONE;
}

/* ------------------------------------------------------ what is shown */

static int writer_stats_full(dbpool_coord *c, dbpool_writer_stats *out);

int dbpool_coord_writer_stats(dbpool_coord *c, dbpool_writer_stats *out)
{
  if (!c || !out) return dbp_err(-EINVAL, "dbpool: writer_stats: NULL argument");
  int rc = dbp_sized_check(out, DBP_V1_WRITER_STATS, "dbpool_writer_stats", "DBPOOL_INIT");
  dbpool_writer_stats full;
  if (rc == 0) rc = writer_stats_full(c, &full);
  if (rc == 0) dbp_sized_out(out, &full, sizeof full);
  return rc;
}

static int writer_stats_full(dbpool_coord *c, dbpool_writer_stats *out)
{
  dbp_writerq *q = wq(c);
  memset(out, 0, sizeof *out);
  out->enabled = atomic_load(&q->enabled) != 0;
  out->starvation_ms = (int32_t)atomic_load(&q->starve_ms);
  unsigned j = atomic_load(&q->journal);
  out->journal = j <= WQ_JOURNAL_ROLLBACK ? (int32_t)j : WQ_JOURNAL_UNKNOWN;
  uint64_t t = atomic_load(&q->turn);
  out->writing = WQ_T_KIND(t) == WQ_HELD;
  out->total_writes = atomic_load(&q->total_writes);
  out->total_waits = atomic_load(&q->total_waits);
  out->total_wait_ns = atomic_load(&q->total_wait_ns);
  out->max_wait_ns = atomic_load(&q->max_wait_ns);
  out->turns_skipped = atomic_load(&q->skipped_dead);
  out->turns_expired = atomic_load(&q->expired);
  out->strict_handoffs = atomic_load(&q->strict_grants);
  out->handoff_ns = atomic_load(&q->handoff_ns);
  uint32_t hwm = entry_hwm(q);
  for (uint32_t i = 0; i < hwm; i++)
    out->waiting += WQE_KIND(atomic_load(&q->entries[i].state)) == WQE_WAITING &&
                    !(WQ_T_IDX(t) == i && WQ_T_KIND(t) == WQ_HELD);
  uint64_t counts[DBPOOL_HIST_BUCKETS], waited = 0;
  for (unsigned b = 1; b < DBPOOL_HIST_BUCKETS; b++) {
    counts[b] = atomic_load_explicit(&q->hist[b], memory_order_relaxed);
    waited += counts[b];
  }
  counts[0] = out->total_writes > waited ? out->total_writes - waited : 0;
  uint64_t total = counts[0] + waited;
  out->p50_wait_ns = dbp_percentile(counts, total, 0.50, out->max_wait_ns);
  out->p99_wait_ns = dbp_percentile(counts, total, 0.99, out->max_wait_ns);
  out->p999_wait_ns = dbp_percentile(counts, total, 0.999, out->max_wait_ns);
  return 0;
}

int dbpool_coord_writers(dbpool_coord *c, dbpool_writer_info *buf, size_t cap,
                         size_t elem_size)
{
  if (!c || (cap && !buf)) return dbp_err(-EINVAL, "dbpool: writers: NULL argument");
  int rc = dbp_elem_check(elem_size, DBP_V1_WRITER_INFO, "dbpool_writer_info");
  if (rc) return rc;
  dbp_writerq *q = wq(c);
  uint64_t t = atomic_load(&q->turn);
  int64_t now = dbp_mono_ns();
  uint32_t hwm = entry_hwm(q);
  size_t n = 0;
  for (uint32_t i = 0; i < hwm; i++) {
    dbp_wq_entry *e = &q->entries[i];
    unsigned kind = WQE_KIND(atomic_load(&e->state));
    bool turn = WQ_T_IDX(t) == i && WQ_T_KIND(t) != WQ_FREE;
    if (kind != WQE_WAITING && !turn) continue;
    if (n < cap) {
      dbpool_writer_info info, *o = &info;
      memset(o, 0, sizeof *o);
      o->record = atomic_load(&e->record);
      o->pid = atomic_load(&e->pid);
      o->tid = atomic_load(&e->tid);
      o->state = !turn ? DBPOOL_WRITER_WAITING
               : WQ_T_KIND(t) == WQ_HELD ? DBPOOL_WRITER_WRITING : DBPOOL_WRITER_GRANTED;
      o->ticket = atomic_load(&e->ticket);
      int64_t since = atomic_load(&e->since_ns);
      o->waited_ns = kind == WQE_WAITING && now > since ? now - since : 0;
      dbp_elem_put(buf, n, elem_size, &info, sizeof info);
    }
    n++;
  }
  return (int)n; /* at most DBP_WQ_ENTRIES */
}

const char *dbpool_writer_queue_status(const dbpool_writer_stats *ws)
{
  if (!ws || !ws->enabled) return "off";
  if (ws->journal == WQ_JOURNAL_ROLLBACK)
    return "inactive: rollback-journal database (only WAL databases queue writers)";
  return "on";
}

const char *dbpool_writer_state_name(dbpool_writer_state s)
{
  switch (s) {
  case DBPOOL_WRITER_WRITING: return "writing";
  case DBPOOL_WRITER_GRANTED: return "granted";
  case DBPOOL_WRITER_WAITING: return "waiting";
  }
  return "?";
}
