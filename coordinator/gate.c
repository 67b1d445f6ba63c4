/*
** gate.c -- the 16-byte gate and the lock-free fast path.
**
** Uncontended acquire:  read gate; help its last op; CAS gate (active + 1,
**                       last op = "record i -> HELD", seq + 1); store the
**                       record word (HELD, seq).
** Uncontended release:  the same with active - 1 and "record i -> FREE".
**
** The CAS is the linearization point. The record store that follows may be
** lost if the process is killed in between; that is why every reader of the
** gate first "helps": it applies the gate's recorded op to the record with a
** CAS that only succeeds if the record has not seen that sequence number yet
** (record sequence numbers only grow, so a stale helper can never roll a
** record back). Because every CAS on the gate is preceded by helping, the op
** it replaces was applied; the gate and the records agree at all times once
** the current gate is helped.
**
** When the gate's SLOW flag is set (someone waits, the pool is paused or
** removed) both paths go to waitq.c and take the lock. The flag is in the
** gate, so a fast path that read the gate before the flag was set fails its
** CAS and sees the flag on retry: no arrival overtakes a waiter.
*/
#include <errno.h>
#include <limits.h>

#include "internal.h"

/* The same consistent read: kept as a name for readers that never CAS
** (statistics, read-only mappings). */
dbp_gate dbp_gate_snapshot(const dbp_header *h) { return dbp_gate_load(h); }

/* Change flags only (seq unchanged). Under the lock, where flags change
** only here; fast paths may still move the other fields. */
void dbp_gate_set_flags(dbpool_coord *c, uint64_t set, uint64_t clear)
{
  dbp_gate g = dbp_gate_load(c->hdr);
  for (;;) {
    /* bits is one 8-byte load: its flags are not torn. */
    dbp_gate n = {.seq = g.seq, .bits = (g.bits | set) & ~clear};
    if (n.bits == g.bits || dbp_gate_cas(c->hdr, &g, n)) return;
  }
}

static int foreign(const dbpool_holder *hd)
{
  return dbp_err(-EPERM,
                 "dbpool: holder %u of %s belongs to another process "
                 "(inherited across fork); the child must create its own",
                 hd->idx, hd->c->name);
}

int dbp_holder_acquire_interruptible(dbpool_holder *hd, int timeout_ms)
{
  if (!hd) return dbp_err(-EINVAL, "dbpool: acquire: holder is NULL");
  hd->interruptible = true;
  int rc = dbpool_holder_acquire(hd, timeout_ms);
  hd->interruptible = false;
  return rc;
}

int dbpool_holder_cancel(dbpool_holder *hd)
{
  if (!hd) return dbp_err(-EINVAL, "dbpool: cancel: holder is NULL");
  if (hd->fork_gen != dbp_fork_gen()) return foreign(hd);
  atomic_store_explicit(&hd->cancel, 1, memory_order_release);
  atomic_fetch_add_explicit(&hd->rec->wake, 1, memory_order_release);
  dbp_futex_wake(&hd->rec->wake, INT_MAX, DBP_FUTEX_SHARED);
  return 0;
}

void dbp_holder_uncancel(dbpool_holder *hd)
{
  if (hd) atomic_store_explicit(&hd->cancel, 0, memory_order_relaxed);
}

/* A granted acquire uses up a cancel that came before it returned. One
** store (no load and branch) on the fast path: the line is ours already. */
static inline void use_up_cancel(dbpool_holder *hd)
{
  atomic_store_explicit(&hd->cancel, 0, memory_order_relaxed);
}

int dbpool_holder_acquire(dbpool_holder *hd, int timeout_ms)
{
  if (!hd) return dbp_err(-EINVAL, "dbpool: acquire: holder is NULL");
  if (hd->fork_gen != dbp_fork_gen()) return foreign(hd);
  if (hd->held || hd->waiting)
    return dbp_err(-EALREADY, "dbpool: holder %u of %s already holds a slot",
                   hd->idx, hd->c->name);
  dbp_header *h = hd->c->hdr;
  dbp_record *r = hd->rec;
  atomic_store_explicit(&r->tid, dbp_tid(), memory_order_relaxed);
  atomic_store_explicit(&r->since_ns, dbp_real_coarse_ns(), memory_order_relaxed);
  dbp_gate g = dbp_gate_load(h);
  while (!(g.bits & G_SLOW) && g_active(g.bits) < g_max(g.bits)) {
    dbp_gate_help(hd->c, g);
    dbp_gate n = dbp_gate_op(g, hd->idx, false);
    if (dbp_gate_cas(h, &g, n)) {
      atomic_store_explicit(&r->word, REC_WORD(REC_HELD, n.seq),
                            memory_order_release);
      hd->held = true;
      use_up_cancel(hd);
      return 0;
    }
  }
  int rc = dbp_acquire_slow(hd, timeout_ms);
  if (rc == 0) use_up_cancel(hd);
  return rc;
}

int dbpool_holder_release(dbpool_holder *hd)
{
  if (!hd) return dbp_err(-EINVAL, "dbpool: release: holder is NULL");
  if (hd->fork_gen != dbp_fork_gen()) return foreign(hd);
  if (!hd->held)
    return dbp_err(-ENOENT, "dbpool: holder %u of %s holds no slot", hd->idx,
                   hd->c->name);
  dbp_header *h = hd->c->hdr;
  dbp_record *r = hd->rec;
  atomic_store_explicit(&r->flags, 0, memory_order_relaxed);
  /* Our record says held (we wrote it, or a helper did): unless garbage
  ** took it from us, which only the slow path can tell and answer. */
  if (REC_STATE(atomic_load_explicit(&r->word, memory_order_acquire)) != REC_HELD)
    return dbp_release_slow(hd);
  dbp_gate g = dbp_gate_load(h);
  while (!(g.bits & G_SLOW) && g_active(g.bits) > 0) {
    dbp_gate_help(hd->c, g);
    dbp_gate n = dbp_gate_op(g, hd->idx, true);
    if (dbp_gate_cas(h, &g, n)) {
      atomic_store_explicit(&r->word, REC_WORD(REC_FREE, n.seq),
                            memory_order_release);
      hd->held = false;
      return 0;
    }
  }
  return dbp_release_slow(hd);
}
