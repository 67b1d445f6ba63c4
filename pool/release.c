/*
** release.c -- dbpool_release, and the leak reports it ends.
**
** Fast path: push the connection back on the idle stack under the pool
** lock, or hand it to a waiter (handoff.c). Otherwise:
**
** - Release of a dirty connection (open transaction, running statement):
**   reset outside the lock; if that fails, close it.
** - Release while another process waits for a host slot and this pool keeps
**   min_idle idle already: close it and give the slot back.
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"

/* A leak report (built under the lock, delivered outside it). */
static dbpool_leak leak_of(dbpool *p, const pool_entry *e, int returned)
{
  int64_t now = pool_coarse_ms();
  dbpool_leak leak = {.size = sizeof leak, .db = e->db, .database = p->path,
                      .thread = e->checkout_tid,
                      .acquired_at_ns = e->checkout_ms * 1000000 + p->real_minus_mono_ns,
                      .held_ms = now - e->checkout_ms, .returned = returned};
  return leak;
}

dbpool_leak pool_leak_of(dbpool *p, const pool_entry *e) { return leak_of(p, e, 0); }

void pool_report_leak(dbpool *p, const dbpool_leak *leak)
{
  if (leak->returned)
    sqlite3_log(SQLITE_WARNING, "dbpool: connection %p to %s, reported as "
                "possibly leaked, came back after %lld ms (thread %d)",
                (void *)leak->db, p->path, (long long)leak->held_ms, leak->thread);
  else
    sqlite3_log(SQLITE_WARNING, "dbpool: connection %p to %s has been held for "
                "%lld ms by thread %d (leak_threshold_ms=%d): possible leak",
                (void *)leak->db, p->path, (long long)leak->held_ms, leak->thread,
                p->cfg.leak_threshold_ms);
  if (p->cfg.on_leak) p->cfg.on_leak(p->cfg.on_leak_arg, leak);
}

static int release_misuse(dbpool *p, sqlite3 *db)
{
  p->st.misuses++;
  unlock_pool(p);
  return dbp_err(SQLITE_MISUSE, "dbpool: release of connection %p, which is "
                  "not checked out from the pool of %s (released twice, or "
                  "never acquired from it)", (void *)db, p->path);
}

/* A release that resets, closes, gives back or reports. Lock held; entry
** idx is checked out. */
__attribute__((noinline)) static int release_slow(dbpool *p, int idx)
{
  pool_entry *e = &p->entries[idx];
  sqlite3 *db = e->db;
  close_reason why = CLOSE_IDLE;
  bool close_it = false;
  if (conn_needs_reset(db)) {
    e->state = ENTRY_RESETTING; /* refuses a second release meanwhile */
    unlock_pool(p);
    int dirty = conn_reset(db);
    lock_pool(p);
    p->st.resets++;
    if (dirty) {
      close_it = true;
      why = CLOSE_RESET_FAILED;
    }
    e->state = ENTRY_OUT;
  }
  bool leaked = e->leak_reported;
  dbpool_leak leak;
  if (leaked) leak = leak_of(p, e, 1);
  e->leak_reported = false;
  if (!close_it && (e->retire || p->closing)) {
    close_it = true;
    why = p->closing ? CLOSE_POOL_CLOSE : e->retire_why;
  }
  if (!close_it && !p->wq_head && !p->openers && p->n_idle >= p->cfg.min_idle &&
      host_has_waiters(p)) {
    close_it = true; /* another process waits for a slot: give ours back */
    why = CLOSE_GIVEN_BACK;
  }
  p->n_out--;
  pool_waiter *wake = NULL;
  if (close_it) {
    entry_retire_locked(p, idx, why);
    pool_close_entry(p, idx);
  } else {
    wake = pool_offer_locked(p, idx);
  }
  unlock_pool(p);
  pool_wake(wake);
  if (leaked) pool_report_leak(p, &leak);
  return SQLITE_OK;
}

int dbpool_release(dbpool *p, sqlite3 *db)
{
  if (!p) return dbp_err(SQLITE_MISUSE, "dbpool: release: pool is NULL");
  if (pool_foreign(p)) return pool_inherited();
  lock_pool(p);
  int idx = db ? map_get(p, db) : -1;
  if (idx < 0 || p->entries[idx].state != ENTRY_OUT) return release_misuse(p, db);
  pool_entry *e = &p->entries[idx];
  /* The fast path: clean, nothing to report, nobody else to think of. */
  if (__builtin_expect(!e->leak_reported && !e->retire && !p->closing &&
                       !conn_needs_reset(db), 1)) {
    if (__builtin_expect(!p->wq_head && !p->openers, 1)) {
      /* Nobody here waits: onto the idle stack (pool_offer_locked's last
      ** step, inline), unless another process waits for a slot. */
      if (__builtin_expect(p->n_idle < p->cfg.min_idle || !host_has_waiters(p), 1)) {
        p->n_out--;
        pool_push_idle_locked(p, idx);
        unlock_pool(p);
        return SQLITE_OK;
      }
    } else {
      p->n_out--;
      pool_waiter *wake = pool_offer_locked(p, idx);
      unlock_pool(p);
      pool_wake(wake);
      return SQLITE_OK;
    }
  }
  return release_slow(p, idx);
}
