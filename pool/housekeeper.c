/*
** housekeeper.c -- the one thread per pool that does everything time-based,
** so that dbpool_acquire and dbpool_release never read a clock.
**
** It sleeps on the host pool's "someone is waiting" event (a futex in the
** shared segment), with a timeout of hk_period_ms, and on each wake:
**
**   - notes when it first sees each connection idle (the idle clock: the
**     fast path reads no clock, so idle ages are measured in periods);
**   - if another process waits for a host slot, closes idle connections
**     beyond min_idle at once, giving their slots back (no hoarding);
**   - closes idle connections past idle_timeout_ms (down to min_idle) or
**     past their max lifetime, and marks checked-out ones past their
**     lifetime to be closed when released;
**   - reports connections held past leak_threshold_ms (once each);
**   - about once a second, checks idle connections for a database file that
**     was moved, deleted or replaced (SQLITE_FCNTL_HAS_MOVED: a stat, no
**     query) and closes those;
**   - opens connections up to min_idle, without waiting for host slots;
**   - when the host pool was removed (dbpoolctl rm --force), closes idle
**     connections and marks checked-out ones to be closed when released:
**     their replacements are opened, and counted, in the new host pool.
**
** Why a thread and not acquire/release: idle connections must be closed,
** and slots given back, even when nobody calls the pool; and the fast path
** stays free of clocks and system calls.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool_internal.h"

#define MOVED_CHECK_MS 1000

typedef struct hk_work {
  int *close_idx;  /* entries retired under the mutex, to close outside */
  int nclose;
  int *check_idx;  /* idle entries taken off for a moved-file check */
  int ncheck;
  int *open_idx;   /* entries reserved to open for min_idle */
  int nopen;
  dbpool_leak *leaks;
  int nleaks;
} hk_work;

static int period_of(const dbpool_config *c)
{
  int period = 1000;
  if (c->idle_timeout_ms > 0 && c->idle_timeout_ms / 4 < period) period = c->idle_timeout_ms / 4;
  if (c->max_lifetime_ms > 0 && c->max_lifetime_ms / 10 < period) period = c->max_lifetime_ms / 10;
  if (c->leak_threshold_ms > 0 && c->leak_threshold_ms / 4 < period)
    period = c->leak_threshold_ms / 4;
  return period < 10 ? 10 : period;
}

/* Under the mutex: walk the idle stack, keep what stays, retire the rest. */
static void sweep_idle_locked(dbpool *p, int64_t now, bool give_back, bool check_moved,
                              bool host_removed, hk_work *w)
{
  int keep[p->cfg.max_size], nkeep = 0;
  for (int i = p->idle_top; i >= 0; i = p->entries[i].idle_next) {
    /* Idle since we first saw it idle without a checkout in between: an
    ** idle age never overestimated (the fast path reads no clock). */
    pool_entry *e = &p->entries[i];
    if (e->hk_uses != e->uses || e->hk_idle_seen_ms == 0) {
      e->hk_uses = e->uses;
      e->hk_idle_seen_ms = now;
    }
    keep[nkeep++] = i;
  }
  /* keep[] is most recently used first; retire from the least recent end. */
  int remaining = nkeep;
  p->idle_top = -1;
  int survivors[p->cfg.max_size], ns = 0;
  for (int k = nkeep - 1; k >= 0; k--) {
    int idx = keep[k];
    pool_entry *e = &p->entries[idx];
    close_reason why = CLOSE_IDLE;
    bool go = false;
    if (host_removed) {
      go = true; /* reopened in the new host pool, counted there */
      why = CLOSE_BROKEN;
    } else if (e->expires_ms && now >= e->expires_ms) {
      go = true;
      why = CLOSE_LIFETIME;
    } else if (remaining > p->cfg.min_idle) {
      if (give_back) {
        go = true;
        why = CLOSE_GIVEN_BACK;
      } else if (p->cfg.idle_timeout_ms > 0 && now - e->hk_idle_seen_ms >= p->cfg.idle_timeout_ms) {
        go = true;
        why = CLOSE_IDLE;
      }
    }
    if (go) {
      remaining--;
      p->n_idle--;
      entry_retire_locked(p, idx, why);
      w->close_idx[w->nclose++] = idx;
    } else if (check_moved) {
      p->n_idle--;
      e->state = ENTRY_CHECKING;
      w->check_idx[w->ncheck++] = idx;
    } else {
      survivors[ns++] = idx;
    }
  }
  /* Rebuild the stack: least recent at the bottom. */
  for (int k = 0; k < ns; k++) {
    p->entries[survivors[k]].idle_next = p->idle_top;
    p->idle_top = survivors[k];
  }
}

/* Under the lock: checked-out connections past their lifetime (or of a
** removed host pool) are marked to close at release; leaks are noted. */
static void sweep_out_locked(dbpool *p, int64_t now, bool removed, hk_work *w)
{
  for (int i = 0; i < p->cfg.max_size; i++) {
    pool_entry *e = &p->entries[i];
    if (e->state != ENTRY_OUT) continue;
    if (removed) {
      e->retire = true; /* reopened, and counted, in the new host pool */
      e->retire_why = CLOSE_BROKEN;
    } else if (e->expires_ms && now >= e->expires_ms && !e->retire) {
      e->retire = true;
      e->retire_why = CLOSE_LIFETIME;
    }
    if (p->cfg.leak_threshold_ms > 0 && !e->leak_reported &&
        pool_coarse_ms() - e->checkout_ms >= p->cfg.leak_threshold_ms) {
      e->leak_reported = true;
      p->st.leaks_reported++;
      w->leaks[w->nleaks++] = pool_leak_of(p, e);
    }
  }
}

/* Under the lock: reserve entries to open up to min_idle, unless others
** wait for the host. */
static void plan_min_idle_locked(dbpool *p, bool someone, hk_work *w)
{
  while (!someone && !p->closing && p->n_total < p->cfg.min_idle &&
         p->n_total < p->cfg.max_size) {
    int idx = 0;
    while (p->entries[idx].state != ENTRY_EMPTY) idx++;
    p->entries[idx].state = ENTRY_OPENING;
    p->n_total++;
    w->open_idx[w->nopen++] = idx;
  }
}

static void close_retired(dbpool *p, int idx)
{
  conn_close(p, &p->entries[idx]);
  pool_lock_acquire(&p->lock);
  pool_entry_emptied_locked(p, idx);
  pool_lock_release(&p->lock);
}

/* An idle connection taken off for a moved-file check: closed, or back
** to whoever wants it. */
static void finish_check(dbpool *p, int idx)
{
  bool moved = conn_has_moved(p->entries[idx].db);
  pool_lock_acquire(&p->lock);
  if (moved || p->closing) {
    entry_retire_locked(p, idx, moved ? CLOSE_BROKEN : CLOSE_POOL_CLOSE);
    pool_lock_release(&p->lock);
    close_retired(p, idx);
  } else {
    pool_waiter *w = pool_offer_locked(p, idx);
    pool_lock_release(&p->lock);
    pool_wake(w);
  }
}

/* Open a min_idle connection in reserved entry idx, never waiting for the
** host. */
static void open_for_min_idle(dbpool *p, int idx)
{
  /* Nobody cancels the housekeeper's opens: drop a cancel left over from
  ** an opener whose slot came before it (the entry is ours). */
  dbp_holder_uncancel(p->entries[idx].holder);
  int rc = conn_open(p, &p->entries[idx], 0);
  pool_lock_acquire(&p->lock);
  pool_waiter *wake = NULL;
  if (rc == SQLITE_OK) {
    p->st.created++;
    map_put(p, p->entries[idx].db, idx);
    wake = pool_offer_locked(p, idx);
  } else {
    if (rc != SQLITE_BUSY) p->st.open_failures++;
    pool_entry_emptied_locked(p, idx);
  }
  pool_lock_release(&p->lock);
  pool_wake(wake);
}

/* Outside the lock: carry out what one round planned. */
static void carry_out(dbpool *p, const hk_work *w)
{
  for (int k = 0; k < w->nclose; k++) close_retired(p, w->close_idx[k]);
  for (int k = 0; k < w->nleaks; k++) pool_report_leak(p, &w->leaks[k]);
  for (int k = 0; k < w->ncheck; k++) finish_check(p, w->check_idx[k]);
  for (int k = 0; k < w->nopen; k++) open_for_min_idle(p, w->open_idx[k]);
}

/* Under the lock (released while it sleeps): others wait but we had nothing
** to give: do not spin on their event, sleep a period (or until stopped). */
static void pause_locked(dbpool *p)
{
  uint32_t v = atomic_load(&p->hk_event);
  int64_t dl = ((int64_t)pool_mono_ms() + p->hk_period_ms) * 1000000;
  pool_lock_release(&p->lock);
  pool_futex_wait(&p->hk_event, v, dl);
  pool_lock_acquire(&p->lock);
}

static void work_free(hk_work *w)
{
  free(w->close_idx);
  free(w->check_idx);
  free(w->open_idx);
  free(w->leaks);
  free(w);
}

/* Made by housekeeper_start, before the thread exists: a thread that could
** not get its memory would die silently, and the pool run without one. */
static hk_work *work_new(int n)
{
  hk_work *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->close_idx = malloc((size_t)n * sizeof(int));
  w->check_idx = malloc((size_t)n * sizeof(int));
  w->open_idx = malloc((size_t)n * sizeof(int));
  w->leaks = malloc((size_t)n * sizeof(dbpool_leak));
  if (w->close_idx && w->check_idx && w->open_idx && w->leaks) return w;
  work_free(w);
  return NULL;
}

static void *housekeeper_main(void *arg)
{
  dbpool *p = arg;
  hk_work w = *p->hk_work; /* the arrays are shared; the counts are ours */
  int64_t next_moved_check = pool_mono_ms() + MOVED_CHECK_MS;
  pool_lock_acquire(&p->lock);
  while (!p->hk_stop) {
    dbpool_coord *coord = p->coord; /* may be replaced (rejoin), never freed */
    pool_lock_release(&p->lock);
    int someone = dbp_coord_wait_for_waiter(coord, p->hk_period_ms);
    pool_lock_acquire(&p->lock);
    if (p->hk_stop) break;
    int64_t now = pool_mono_ms();
    bool check_moved = now >= next_moved_check;
    if (check_moved) next_moved_check = now + MOVED_CHECK_MS;
    w.nclose = w.ncheck = w.nopen = w.nleaks = 0;

    bool removed = dbp_coord_removed(coord);
    sweep_idle_locked(p, now, someone, check_moved, removed, &w);
    sweep_out_locked(p, now, removed, &w);
    plan_min_idle_locked(p, someone, &w);
    pool_lock_release(&p->lock);
    carry_out(p, &w);
    pool_lock_acquire(&p->lock);
    if (someone && w.nclose == 0 && !p->hk_stop) pause_locked(p);
  }
  pool_lock_release(&p->lock);
  return NULL;
}

int housekeeper_start(dbpool *p)
{
  p->hk_period_ms = period_of(&p->cfg);
  p->hk_work = work_new(p->cfg.max_size);
  if (!p->hk_work) return dbp_err(SQLITE_NOMEM, "dbpool: out of memory");
  int rc = pthread_create(&p->housekeeper, NULL, housekeeper_main, p);
  if (rc) {
    work_free(p->hk_work);
    p->hk_work = NULL;
    return dbp_err(SQLITE_ERROR, "dbpool: cannot start the housekeeping thread of the "
                   "pool of %s: %s", p->path, strerror(rc));
  }
  p->hk_started = true;
  return SQLITE_OK;
}

void housekeeper_stop(dbpool *p)
{
  if (!p->hk_started) return;
  pool_lock_acquire(&p->lock);
  p->hk_stop = true;
  atomic_fetch_add(&p->hk_event, 1);
  pool_futex_wake(&p->hk_event, 1);
  pool_lock_release(&p->lock);
  dbp_coord_wake_listeners(p->coord);
  for (int i = 0; i < p->nretired; i++) dbp_coord_wake_listeners(p->retired[i]);
  pthread_join(p->housekeeper, NULL);
  p->hk_started = false;
  work_free(p->hk_work);
  p->hk_work = NULL;
}
