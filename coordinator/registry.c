/*
** registry.c -- this process's attachments and holders.
**
** A process maps each pool once: handles opened for the same database share
** one refcounted attachment (every handle and every holder is a reference),
** and the mapping stays cached when the last reference goes, so that a
** process opening and closing connections does not map and unmap each time.
** The process registers itself in the pool (a process record carrying its
** identity) while it has holders, so that observers that only read
** statistics never appear as users. After fork() the child sees its
** parent's attachments as foreign: it maps and registers anew.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastpath.h"
#include "internal.h"

#ifndef DBPOOL_VERSION
#define DBPOOL_VERSION "0.0.0"
#endif

static dbpool_coord *g_list; /* guarded by the registry lock */

const char *dbpool_version_string(void) { return DBPOOL_VERSION; }

void dbp_label_store(_Atomic uint64_t *dst, unsigned words, const char *src)
{
  char buf[64] = {0};
  size_t cap = (size_t)words * 8 - 1, len = src ? strlen(src) : 0;
  if (len > cap) {
    len = cap;
    while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80) len--; /* UTF-8 */
  }
  if (len) memcpy(buf, src, len);
  for (unsigned i = 0; i < words; i++) {
    uint64_t v;
    memcpy(&v, buf + 8 * i, 8);
    atomic_store_explicit(&dst[i], v, memory_order_relaxed);
  }
}

void dbp_label_load(_Atomic uint64_t *src, unsigned words, char *dst)
{
  for (unsigned i = 0; i < words; i++) {
    uint64_t v = atomic_load_explicit(&src[i], memory_order_relaxed);
    memcpy(dst + 8 * i, &v, 8);
  }
  dst[words * 8 - 1] = 0;
}

/* Under the registry lock: drop a cached attachment nobody uses. */
static void forget(dbpool_coord *c)
{
  for (dbpool_coord **pp = &g_list; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  dbp_segment_unmap(c);
  free(c);
}

static dbpool_coord *find(const char *name, unsigned flags)
{
  unsigned gen = dbp_fork_gen();
  dbpool_coord *next;
  for (dbpool_coord *c = g_list; c; c = next) {
    next = c->next;
    if (c->fork_gen != gen || strcmp(c->name, name) != 0) continue;
    if ((dbp_gate_snapshot(c->hdr).bits & G_REMOVED) ||
        !dbp_segment_still_linked(c)) {
      if (c->refs == 0) forget(c);
      continue;
    }
    if (!c->readonly || (flags & DBPOOL_OPEN_READONLY)) return c;
  }
  return NULL;
}

static int open_common(const char *db_path, const char *seg_name,
                       unsigned flags, dbpool_coord **out)
{
  char name[DBP_SEGMENT_NAME_MAX];
  int rc = 0;
  if (!out) return dbp_err(-EINVAL, "dbpool: open: out is NULL");
  *out = NULL;
  if (db_path) {
    uint64_t dev, ino;
    rc = dbp_segment_name_for(db_path, name, &dev, &ino);
  } else if (!seg_name) {
    rc = dbp_err(-EINVAL, "dbpool: open: no database path");
  } else {
    snprintf(name, sizeof name, "/%s", seg_name[0] == '/' ? seg_name + 1 : seg_name);
  }
  if (rc) return rc;
  dbp_registry_lock();
  dbpool_coord *c = find(name, flags);
  if (c) {
    c->refs++;
  } else {
    rc = dbp_segment_attach(db_path, db_path ? NULL : name, flags, &c);
    if (rc == 0) {
      c->refs = 1;
      c->next = g_list;
      g_list = c;
    }
  }
  /* A read-only handle on a pool we can write: fine, we just don't write. */
  dbp_registry_unlock();
  if (rc == 0) *out = c;
  return rc;
}

int dbpool_coord_open(const char *db_path, unsigned flags, dbpool_coord **out)
{
  if (!db_path) return dbp_err(-EINVAL, "dbpool: open: database path is NULL");
  return open_common(db_path, NULL, flags, out);
}

int dbpool_coord_open_segment(const char *segment_name, unsigned flags,
                              dbpool_coord **out)
{
  return open_common(NULL, segment_name, flags | DBPOOL_OPEN_NOCREATE, out);
}

const char *dbpool_coord_segment_name(const dbpool_coord *c)
{
  return c ? c->name : "";
}

void dbpool_coord_database(const dbpool_coord *c, char *buf, size_t cap)
{
  if (!buf || cap == 0) return;
  buf[0] = 0;
  if (!c) return;
  /* The header's copy can change (rename); read it bounded. */
  size_t n = cap < DBPOOL_PATH_MAX ? cap : DBPOOL_PATH_MAX;
  memcpy(buf, c->hdr->path, n);
  buf[n - 1] = 0;
}

/* Under the registry lock. */
static void detach_process(dbpool_coord *c)
{
  if (c->readonly || c->proc_idx < 0 || c->proc_fork_gen != dbp_fork_gen())
    return;
  if (dbp_lock(c, -1) != 0) return;
  dbp_process *pr = &c->procs[c->proc_idx];
  if (atomic_load(&pr->state) == PROC_LIVE && atomic_load(&pr->gen) == c->proc_gen)
    dbp_reap_process_locked(c, (unsigned)c->proc_idx, false);
  dbp_unlock_granting(c);
  c->proc_idx = -1;
}

/* Drop one reference. The mapping stays cached for the next open, unless
** it is a parent's (after fork) or its pool was removed. */
static void unref(dbpool_coord *c)
{
  dbp_registry_lock();
  if (--c->refs == 0 && (c->fork_gen != dbp_fork_gen() ||
                         (dbp_gate_snapshot(c->hdr).bits & G_REMOVED))) {
    detach_process(c); /* only if this process (not a parent) registered */
    forget(c);
  }
  dbp_registry_unlock();
}

void dbpool_coord_close(dbpool_coord *c)
{
  if (c) unref(c);
}

/* A holder is gone: the last one of this process leaves the pool. */
static void drop_holder(dbpool_coord *c)
{
  dbp_registry_lock();
  if (--c->holders == 0 && c->proc_fork_gen == dbp_fork_gen()) detach_process(c);
  dbp_registry_unlock();
  unref(c);
}

/* Register this process in the pool, once per process. Registry lock held. */
int dbp_register_process(dbpool_coord *c)
{
  unsigned fgen = dbp_fork_gen();
  if (c->proc_idx >= 0 && c->proc_fork_gen == fgen) return 0;
  /* Who we are: computed once per process (registry lock held). */
  static unsigned cached_gen;
  static uint32_t kind;
  static uint64_t ident, pidns;
  static char comm[DBPOOL_PROCESS_NAME_MAX];
  if (cached_gen != fgen) {
    dbp_self_identity(&kind, &ident);
    dbp_self_comm(comm);
    pidns = dbp_self_pidns();
    cached_gen = fgen;
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    int rc = dbp_lock(c, -1);
    if (rc) return rc;
    dbp_header *h = c->hdr;
    if (dbp_gate_load(h).bits & G_REMOVED) {
      dbp_unlock(c);
      return dbp_err(-ESTALE, "dbpool: pool %s of %s was removed; reopen it",
                     c->name, c->path);
    }
    uint32_t phwm = dbp_process_hwm(h), p;
    for (p = 0; p < phwm; p++)
      if (atomic_load(&c->procs[p].state) == PROC_FREE) break;
    if (p == phwm && phwm < DBP_PROCESSES) atomic_store(&h->process_hwm, ++phwm);
    if (p < phwm) {
      dbp_process *pr = &c->procs[p];
      uint32_t gen = atomic_fetch_add(&pr->gen, 1) + 1;
      atomic_store(&pr->pid, dbp_pid());
      atomic_store(&pr->ident_kind, kind);
      atomic_store(&pr->ident, ident);
      atomic_store(&pr->attached_ns, dbp_real_ns());
      atomic_store(&pr->pidns, pidns);
      dbp_label_store(pr->comm, DBP_COMM_WORDS, comm);
      atomic_store(&pr->n_records, 0);
      atomic_store(&pr->state, PROC_LIVE);
      dbp_unlock(c);
      c->proc_idx = (int)p;
      c->proc_gen = gen;
      c->proc_fork_gen = fgen;
      return 0;
    }
    dbp_unlock(c);
    if (attempt == 0) dbp_reap(c);
  }
  return dbp_err(-ENOSPC, "dbpool: pool of %s has no free process record "
                 "(%u processes attached)", c->path, DBP_PROCESSES);
}

/* Under the pool lock: an unowned free record, or DBP_REC_NONE. */
static uint32_t alloc_record_locked(dbpool_coord *c)
{
  dbp_header *h = c->hdr;
  uint32_t hwm = dbp_record_hwm(h);
  uint32_t i = atomic_load(&h->free_head);
  if (i < hwm && atomic_load(&c->recs[i].owner) == 0 &&
      REC_STATE(atomic_load(&c->recs[i].word)) == REC_FREE) {
    atomic_store(&h->free_head, atomic_load(&c->recs[i].free_next));
    return i;
  }
  atomic_store(&h->free_head, DBP_REC_NONE); /* empty, or garbage: stop trusting it */
  if (hwm < DBP_RECORDS) {
    atomic_store(&h->record_hwm, hwm + 1);
    return hwm;
  }
  for (i = 0; i < hwm; i++)
    if (atomic_load(&c->recs[i].owner) == 0 &&
        REC_STATE(atomic_load(&c->recs[i].word)) == REC_FREE)
      return i;
  return DBP_REC_NONE;
}

int dbpool_holder_new(dbpool_coord *c, dbpool_holder **out)
{
  if (!c || !out) return dbp_err(-EINVAL, "dbpool: holder_new: NULL argument");
  *out = NULL;
  if (c->readonly)
    return dbp_err(-EROFS, "dbpool: pool of %s is attached read-only", c->path);
  if (c->fork_gen != dbp_fork_gen()) {
    /* A handle inherited across fork(): the child attaches as itself, once
    ** per pool, through its own attachment (shared with its own opens). */
    dbpool_coord *own;
    int rc = open_common(NULL, c->name, DBPOOL_OPEN_NOCREATE, &own);
    if (rc) return rc;
    rc = dbpool_holder_new(own, out);
    dbpool_coord_close(own); /* the holder keeps its own reference */
    return rc;
  }
  dbpool_holder *hd = calloc(1, sizeof *hd);
  if (!hd) return dbp_err(-ENOMEM, "dbpool: out of memory");

  dbp_registry_lock();
  int rc = dbp_register_process(c);
  if (rc == 0) {
    c->refs++;
    c->holders++;
  }
  dbp_registry_unlock();
  if (rc) {
    free(hd);
    return rc;
  }
  int p = c->proc_idx;
  uint32_t idx = DBP_REC_NONE;
  for (int attempt = 0; attempt < 2 && idx == DBP_REC_NONE; attempt++) {
    rc = dbp_lock(c, -1);
    if (rc) break;
    idx = alloc_record_locked(c);
    if (idx != DBP_REC_NONE) {
      dbp_record *r = &c->recs[idx];
      atomic_store(&r->flags, 0);
      atomic_store(&r->joined, DBPOOL_JOINED_API);
      atomic_store(&r->tid, 0);
      atomic_store(&r->since_ns, 0);
      dbp_label_store(r->label, DBP_LABEL_WORDS, NULL);
      atomic_store(&r->owner, (uint32_t)p + 1);
      atomic_fetch_add(&c->procs[p].n_records, 1);
    }
    dbp_unlock(c);
    if (idx == DBP_REC_NONE && attempt == 0) dbp_reap(c);
  }
  if (rc == 0 && idx == DBP_REC_NONE)
    rc = dbp_err(-ENOSPC, "dbpool: pool of %s has no free holder record "
                 "(%u in use)", c->path, DBP_RECORDS);
  if (rc) {
    free(hd);
    drop_holder(c);
    return rc;
  }
  hd->c = c;
  hd->idx = idx;
  hd->rec = &c->recs[idx];
  hd->proc_idx = p;
  hd->fork_gen = dbp_fork_gen();
  *out = hd;
  return 0;
}

void dbpool_holder_free(dbpool_holder *hd)
{
  if (!hd) return;
  dbpool_coord *c = hd->c;
  if (hd->fork_gen == dbp_fork_gen()) {
    if (hd->held) dbpool_holder_release(hd);
    if (dbp_lock(c, -1) == 0) {
      dbp_record *r = hd->rec;
      if (atomic_load(&r->owner) == (uint32_t)hd->proc_idx + 1 &&
          REC_STATE(atomic_load(&r->word)) == REC_FREE) {
        atomic_store(&r->flags, 0);
        dbp_label_store(r->label, DBP_LABEL_WORDS, NULL);
        atomic_store(&r->owner, 0);
        atomic_store(&r->free_next, atomic_load(&c->hdr->free_head));
        atomic_store(&c->hdr->free_head, hd->idx);
        if (atomic_load(&c->procs[hd->proc_idx].n_records) > 0)
          atomic_fetch_sub(&c->procs[hd->proc_idx].n_records, 1);
      }
      dbp_unlock(c);
    }
  }
  free(hd);
  drop_holder(c);
}

int dbpool_holder_held(const dbpool_holder *hd) { return hd && hd->held; }

unsigned dbpool_holder_slot(const dbpool_holder *hd) { return hd ? hd->idx : DBP_REC_NONE; }

dbpool_coord *dbpool_holder_coord(const dbpool_holder *hd) { return hd ? hd->c : NULL; }

int dbpool_holder_set_label(dbpool_holder *hd, const char *label)
{
  if (!hd) return dbp_err(-EINVAL, "dbpool: set_label: holder is NULL");
  if (hd->fork_gen != dbp_fork_gen())
    return dbp_err(-EPERM, "dbpool: holder belongs to another process");
  dbp_label_store(hd->rec->label, DBP_LABEL_WORDS, label);
  return 0;
}

void dbpool_holder_set_idle(dbpool_holder *hd, int idle)
{
  if (!hd || hd->fork_gen != dbp_fork_gen()) return;
  atomic_store_explicit(&hd->rec->flags, idle ? REC_FLAG_IDLE : 0,
                        memory_order_relaxed);
}

int dbpool_coord_set_slot_label(dbpool_coord *c, unsigned slot, const char *label)
{
  if (!c || slot >= DBP_RECORDS)
    return dbp_err(-EINVAL, "dbpool: set_slot_label: no slot %u", slot);
  if (c->readonly)
    return dbp_err(-EROFS, "dbpool: pool of %s is attached read-only", c->path);
  dbp_record *r = &c->recs[slot];
  uint32_t owner = atomic_load(&r->owner);
  if (owner < 1 || owner > DBP_PROCESSES ||
      atomic_load(&c->procs[owner - 1].pid) != dbp_pid())
    return dbp_err(-EPERM, "dbpool: slot %u of %s is not held by this "
                   "process", slot, c->path);
  dbp_label_store(r->label, DBP_LABEL_WORDS, label);
  return 0;
}

int dbpool_coord_slot_label(dbpool_coord *c, unsigned slot, char *buf, size_t cap)
{
  char tmp[DBPOOL_LABEL_MAX];
  if (!buf || cap == 0) return dbp_err(-EINVAL, "dbpool: slot_label: no buffer");
  buf[0] = 0;
  if (!c || slot >= DBP_RECORDS)
    return dbp_err(-EINVAL, "dbpool: slot_label: no slot %u", slot);
  dbp_label_load(c->recs[slot].label, DBP_LABEL_WORDS, tmp);
  snprintf(buf, cap, "%s", tmp);
  return 0;
}

_Atomic uint32_t *dbp_holder_flags_word(dbpool_holder *h)
{
  _Static_assert(DBP_FAST_IDLE_FLAG == REC_FLAG_IDLE, "one idle bit");
  return &h->rec->flags;
}

const _Atomic uint32_t *dbp_coord_waiting_word(dbpool_coord *c)
{
  return &c->hdr->n_waiting;
}
