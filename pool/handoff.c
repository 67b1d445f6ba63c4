/*
** handoff.c -- who gets a connection that comes free, under the pool lock.
**
** In order: the longest-waiting opener (a thread waiting for a host slot to
** open a connection of its own: its host wait is cancelled and the
** connection handed to it), a starving head waiter (once a waiter has
** waited POOL_STARVE_NS, releases hand connections to the queue's head directly
** until a waiter is served in time, as Go's sync.Mutex does), or the idle
** stack with a nudge to the head waiter (a thread that arrives while a
** connection is idle may take it first: throughput). So waiters are served
** in order and none waits unboundedly. A connection closed while threads
** wait leaves its entry reserved for the head waiter.
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"



void pool_queue_emptied_locked(dbpool *p)
{
  if (!p->wq_head) {
    p->wq_tail = NULL;
    p->starving = false;
  }
}

pool_waiter *pool_pop_waiter_locked(dbpool *p)
{
  pool_waiter *w = p->wq_head;
  if (w) {
    p->wq_head = w->next;
    p->n_waiting--;
    w->queued = false;
    pool_queue_emptied_locked(p);
  }
  return w;
}

void pool_drain_event_locked(dbpool *p)
{
  atomic_fetch_add(&p->drain_event, 1);
  pool_futex_wake(&p->drain_event, 64);
}

/* Under the lock: entry idx has no connection any more. If threads wait,
** the head one gets the entry reserved to open a connection in it (the
** returned waiter, to wake). */
static pool_waiter *entry_emptied_locked(dbpool *p, int idx)
{
  pool_entry *e = &p->entries[idx];
  pool_waiter *w = p->closing ? NULL : pool_pop_waiter_locked(p);
  if (w) {
    e->state = ENTRY_OPENING;
    w->entry = idx;
    w->retry = true;
    atomic_store_explicit(&w->word, 1, memory_order_release);
    return w;
  }
  e->state = ENTRY_EMPTY;
  p->n_total--;
  if (p->closing && p->n_total == 0) pool_drain_event_locked(p);
  return NULL;
}

void pool_entry_emptied_locked(dbpool *p, int idx)
{
  pool_waiter *w = entry_emptied_locked(p, idx);
  if (w) pool_futex_wake(&w->word, 1); /* rare path: wake under the lock */
}

/* Under the lock: hand entry idx, checked out, to someone waiting. */
void pool_hand_out_locked(dbpool *p, int idx, int tid)
{
  pool_entry *e = &p->entries[idx];
  e->state = ENTRY_OUT;
  p->n_out++;
  p->st.checkouts++;
  pool_stamp_checkout(p, e, tid);
  entry_set_idle(e, 0);
}

/* Under the lock: call off opener op's wait for a host slot (its acquire
** returns SQLITE_ABORT unless it got the slot already). */
void pool_cancel_opener_locked(dbpool *p, pool_opener *op)
{
  pool_entry *e = &p->entries[op->reserved];
  e->open_cancelled = true;
  if (e->holder) dbpool_holder_cancel(e->holder);
}

/* Under the lock: entry idx holds a ready connection that nobody has
** checked out (a release, a fresh min_idle connection, a checked one). In
** order: the longest-waiting opener (its host wait is cancelled), a
** starving head waiter (direct handoff), or the idle stack with a nudge to
** the head waiter. Returns the waiter to wake after unlocking. */
pool_waiter *pool_offer_locked(dbpool *p, int idx)
{
  if (!p->closing && p->openers) {
    pool_opener *op = p->openers;
    p->openers = op->next;
    pool_hand_out_locked(p, idx, op->tid);
    op->handed = idx;
    pool_cancel_opener_locked(p, op); /* rare: under the lock */
    return NULL;
  }
  pool_waiter *w = p->wq_head;
  if (w && p->starving && !p->closing) {
    pool_pop_waiter_locked(p);
    pool_hand_out_locked(p, idx, w->tid);
    w->entry = idx;
    w->retry = false;
    atomic_store_explicit(&w->word, 1, memory_order_release);
    return w;
  }
  pool_push_idle_locked(p, idx);
  if (w && atomic_load_explicit(&w->word, memory_order_relaxed) == 0) {
    atomic_store_explicit(&w->word, 1, memory_order_release);
    return w;
  }
  return NULL;
}

/* Close entry idx (already retired under the lock) outside it. */
void pool_close_entry(dbpool *p, int idx)
{
  unlock_pool(p);
  conn_close(p, &p->entries[idx]);
  lock_pool(p);
  pool_entry_emptied_locked(p, idx);
}

