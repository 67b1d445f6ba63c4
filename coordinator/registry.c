/*
** registry.c -- this process's attachments and holders.
**
** A process maps each pool once per access mode: handles opened for the
** same database share one refcounted attachment (every handle and every
** holder is a reference). When the last reference goes, the mapping stays
** cached for the next open, but at most DBP_CACHED_UNUSED of them: a
** process that opens and closes many databases keeps a bounded number
** mapped (the least recently used unused one is unmapped first).
**
** The process registers itself in the pool (a process record, its liveness
** lock, and an O_PATH descriptor on the database file to notice its
** deletion) while it has holders, so that observers that only read
** statistics never appear as users. After fork() the child sees its
** parent's attachments as foreign: it maps and registers anew, and the
** descriptors it inherited are closed at once (liveness.c).
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static dbpool_coord *g_list; /* guarded by the registry lock */
#define OPEN_FILE_ONLY 0x100 /* open_common: a non-file is 1, not an error */
static void unref(dbpool_coord *c);
static uint64_t g_tick;      /* LRU clock of unused attachments (lock) */

const char *dbpool_version(void) { return DBPOOL_VERSION; }
int dbpool_version_number(void) { return DBPOOL_VERSION_NUMBER; }

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

/* Attachments taken out of the list under the registry lock, released
** (unregistered from their pool, unmapped) once it is let go: leaving a
** pool takes the pool's lock, never taken under the registry lock. */
static dbpool_coord *g_released;

/* Under the registry lock: drop an attachment nobody uses. */
static void forget(dbpool_coord *c)
{
  for (dbpool_coord **pp = &g_list; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  c->next = g_released;
  g_released = c;
}

static void detach_process(dbpool_coord *c);

/* Let the registry lock go, then release what forget() took out. */
static void registry_unlock(void)
{
  dbpool_coord *list = g_released;
  g_released = NULL;
  dbp_registry_unlock();
  while (list) {
    dbpool_coord *c = list;
    list = c->next;
    if (c->fork_gen == dbp_fork_gen()) { /* a parent's is only memory */
      pthread_mutex_lock(&c->reg_lock);
      detach_process(c);
      pthread_mutex_unlock(&c->reg_lock);
    }
    dbp_segment_unmap(c);
    free(c);
  }
}

/* In the child, right after fork() (registry lock held, one thread): the
** inherited descriptors would keep the parent's liveness locks held after
** the parent died. Close them; the mappings stay (the child may still free
** holders it inherited, which touches only its own memory). */
void dbp_registry_forget_fds_in_child(void)
{
  for (dbpool_coord *c = g_list; c; c = c->next) {
    if (c->fd >= 0) close(c->fd);
    if (c->db_fd >= 0) close(c->db_fd);
    if (c->lock_fd >= 0) close(c->lock_fd);
    c->fd = c->db_fd = c->lock_fd = -1;
  }
}

/* Under the registry lock: unmap unused attachments beyond the cache's
** bound, least recently used first. */
static void trim_cache(void)
{
  for (;;) {
    unsigned unused = 0;
    dbpool_coord *oldest = NULL;
    for (dbpool_coord *c = g_list; c; c = c->next)
      if (c->refs == 0) {
        unused++;
        if (!oldest || c->unused_tick < oldest->unused_tick) oldest = c;
      }
    if (unused <= DBP_CACHED_UNUSED) return;
    forget(oldest);
  }
}

/* Is a cached attachment still the pool to use? Not if it was removed or
** its name now refers to another file; for one attached by a database path,
** not if the database's owner or mode changed and the segment's owner can
** no longer read the database (trust, perms.c), nor if it lives under a
** later candidate name while an earlier one holds a usable pool (naming.c:
** then it is "shadowed", and its users must move). */
enum { USABLE, GONE, SHADOWED };

static int usability(dbpool_coord *c, const char *db_path, const dbp_dbfile *db)
{
  if (dbp_gate_snapshot(c->hdr).bits & G_REMOVED) return GONE; /* any removal */
  /* Its name deleted by hand (rm in /dev/shm): noticed within a second,
  ** not at the price of a stat on every open. */
  int64_t now = dbp_mono_coarse_ns();
  if (now - c->linked_checked_ns >= 1000000000 || now < c->linked_checked_ns) {
    if (!dbp_segment_still_linked(c)) return GONE;
    c->linked_checked_ns = now;
  }
  if (!db || !c->by_path) return USABLE;
  if (db->uid != c->db_uid || db->gid != c->db_gid || db->mode != c->db_mode) {
    if (!dbp_segment_trusted(c, db_path, db)) return SHADOWED;
    c->db_uid = db->uid;
    c->db_gid = db->gid;
    c->db_mode = db->mode;
  }
  if (c->cand > 0 && dbp_lower_candidate_usable(c, db_path, db)) return SHADOWED;
  return USABLE;
}

/* An attachment made by segment name (a forked child's, say) serves opens
** by path too when it is what the candidate rule would choose: trusted, and
** no usable candidate before it. */
static bool promote(dbpool_coord *c, const char *db_path, const dbp_dbfile *db)
{
  char ns[33];
  dbp_key k;
  unsigned cand;
  if (!dbp_parse_segment_name(c->name, ns, &k, &cand) || !dbp_segment_trusted(c, db_path, db))
    return false;
  c->cand = cand;
  if (cand > 0 && dbp_lower_candidate_usable(c, db_path, db)) return false;
  c->db_uid = db->uid;
  c->db_gid = db->gid;
  c->db_mode = db->mode;
  c->by_path = true;
  return true;
}

/* Under the registry lock: our attachment to the pool of db (by_name NULL)
** or to the segment by_name, in the access mode asked for. A cached one
** that is no longer the pool is dropped (if unused) or passed over; one
** that is shadowed and writable is returned in *demote (referenced), for
** the caller to mark removed once the registry lock is released. Checks
** only process-local state and the file system: never takes a pool lock. */
static dbpool_coord *find(const char *ns, const char *db_path, const dbp_dbfile *db,
                          const char *by_name, bool ro, dbpool_coord **demote)
{
  unsigned gen = dbp_fork_gen();
  dbpool_coord *next;
  for (dbpool_coord *c = g_list; c; c = next) {
    next = c->next;
    if (c->fork_gen != gen || c->readonly != ro) continue;
    if (by_name ? strcmp(c->name, by_name) != 0
                : !dbp_key_equal(&c->key, &db->key) || strcmp(c->ns, ns) != 0)
      continue;
    if (!by_name && !c->by_path && !promote(c, db_path, db)) continue;
    int u = usability(c, db_path, by_name ? NULL : db);
    if (u == USABLE) return c;
    if (u == SHADOWED && !c->readonly && demote && !*demote) {
      c->refs++;
      *demote = c;
    } else if (c->refs == 0) {
      forget(c);
    }
  }
  return NULL;
}

static bool usable(dbpool_coord *c) { return usability(c, NULL, NULL) == USABLE; }

/* Attaching maps and validates a segment and may wait for pool locks: it
** runs without the registry lock (which every open, close and fork of the
** process takes); a racing thread's attachment, if it won, is used
** instead of ours. */
static int open_common(const char *db_path, const char *seg_name, unsigned flags,
                       const int64_t *explicit, const dbp_file_id *opened,
                       dbpool_coord **out)
{
  char name[DBP_SEGMENT_NAME_MAX];
  const char *ns = "";
  dbp_dbfile db;
  bool ro = flags & DBPOOL_OPEN_READONLY;
  int rc = 0;
  if (!out) return dbp_err(-EINVAL, "dbpool: open: out is NULL");
  *out = NULL;
  if (db_path) {
    rc = dbp_namespace(&ns);
    if (rc) return rc;
    rc = opened ? dbp_dbfile_from_id(opened, &db) : dbp_dbfile_stat_quiet(db_path, &db);
    if (rc && (flags & OPEN_FILE_ONLY) && (rc == -EINVAL || rc == -ENOENT || rc == -ENOTDIR))
      return 1; /* not a regular file: the caller does not count it */
    /* Again with the message (and if it works then, on). */
    if (rc && (rc = dbp_dbfile_stat(db_path, &db))) return rc;
  } else if (!seg_name) {
    return dbp_err(-EINVAL, "dbpool: open: no database path");
  } else {
    snprintf(name, sizeof name, "/%s", seg_name[0] == '/' ? seg_name + 1 : seg_name);
  }
  const char *by_name = db_path ? NULL : name;
  dbpool_coord *demote = NULL;
  dbp_registry_lock();
  dbpool_coord *c = find(ns, db_path, &db, by_name, ro, &demote);
  if (c) c->refs++;
  registry_unlock();
  if (demote) { /* its users (our holders among them) move to the real pool */
    dbp_mark_removed(demote);
    unref(demote);
  }
  if (!c) {
    dbpool_coord *fresh = NULL;
    rc = dbp_segment_attach(db_path, by_name, flags, explicit, &fresh);
    if (rc) return rc;
    dbp_registry_lock();
    c = find(ns, db_path, &db, by_name, ro, NULL);
    if (c) {
      c->refs++;
    } else {
      c = fresh;
      fresh = NULL;
      c->refs = 1;
      c->next = g_list;
      g_list = c;
    }
    registry_unlock();
    if (fresh) {
      dbp_segment_unmap(fresh);
      free(fresh);
    }
  }
  if (db_path && !ro) dbp_follow_rename(c, db_path);
  *out = c;
  return 0;
}

int dbp_coord_open_file(const char *db_path, const dbp_file_id *opened, dbpool_coord **out)
{
  if (!db_path) return dbp_err(-EINVAL, "dbpool: open: database path is NULL");
  return open_common(db_path, NULL, OPEN_FILE_ONLY, NULL, opened, out);
}

int dbpool_coord_open(const char *db_path, unsigned flags, dbpool_coord **out)
{
  if (!db_path) return dbp_err(-EINVAL, "dbpool: open: database path is NULL");
  return open_common(db_path, NULL, flags, NULL, NULL, out);
}

int dbpool_coord_open_with(const char *db_path, const int64_t *values,
                           dbpool_coord **out)
{
  if (!db_path) return dbp_err(-EINVAL, "dbpool: open: database path is NULL");
  for (int s = 0; values && s < DBPOOL_SETTING_COUNT; s++) {
    const dbpool_setting_info *d = dbpool_setting_describe(s);
    if (values[s] != DBPOOL_SETTING_UNSET &&
        (values[s] < d->min_value || values[s] > d->max_value))
      return dbp_err(-ERANGE, "dbpool: %s=%lld is out of range (%lld..%lld)",
                     d->name, (long long)values[s], (long long)d->min_value,
                     (long long)d->max_value);
  }
  return open_common(db_path, NULL, 0, values, NULL, out);
}

int dbpool_coord_open_segment(const char *segment_name, unsigned flags,
                              dbpool_coord **out)
{
  return open_common(NULL, segment_name, flags | DBPOOL_OPEN_NOCREATE, NULL, NULL, out);
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

/* Under c's registration lock: leave the pool (our last holder is gone and
** the file was deleted, or the attachment is let go): free our records,
** drop the liveness lock, and remove the pool at once if its database file
** was deleted and nobody else uses it. */
static void detach_process(dbpool_coord *c)
{
  if (c->readonly || c->proc_idx < 0 || c->proc_fork_gen != dbp_fork_gen())
    return;
  unsigned p = (unsigned)c->proc_idx;
  if (dbp_lock(c, -1) == 0) {
    dbp_process *pr = &c->procs[p];
    if (atomic_load(&pr->state) == PROC_LIVE && atomic_load(&pr->gen) == c->proc_gen)
      dbp_reap_process_locked(c, p, false);
    __atomic_store_n(&c->proc_idx, -1, __ATOMIC_RELAXED);
    dbp_liveness_drop(c, p);
    dbp_unlock_granting(c);
  }
  __atomic_store_n(&c->proc_idx, -1, __ATOMIC_RELAXED);
  dbp_remove_if_deleted(c);
  if (c->db_fd >= 0) close(c->db_fd);
  c->db_fd = -1;
}

/* Drop one reference. The mapping stays cached for the next open (within
** the cache's bound), unless it is a parent's (after fork) or its pool was
** removed. Never waits for a pool lock: with no reference left there is no
** holder, so the process already left the pool. */
static void unref(dbpool_coord *c)
{
  dbp_registry_lock();
  if (--c->refs == 0) {
    if (c->fork_gen != dbp_fork_gen() || !usable(c)) {
      forget(c);
    } else {
      c->unused_tick = ++g_tick;
      trim_cache();
    }
  }
  registry_unlock();
}

void dbpool_coord_close(dbpool_coord *c)
{
  if (c) unref(c);
}

/* A holder is gone: the last one of this process leaves the pool. In a
** child after fork(), a parent's attachment is only memory: its
** registration lock may have been held by another thread of the parent. */
static void drop_holder(dbpool_coord *c, int linked)
{
  if (c->fork_gen == dbp_fork_gen()) {
    pthread_mutex_lock(&c->reg_lock);
    /* The process stays registered while it keeps the pool mapped (an
    ** open-close-open cycle costs no registration), unless the database
    ** file is gone: then it leaves, and the last to leave removes the pool. */
    struct stat st;
    if (--c->holders == 0 && c->db_fd >= 0 &&
        (linked == 0 || (linked < 0 && fstat(c->db_fd, &st) == 0 && st.st_nlink == 0)))
      detach_process(c);
    pthread_mutex_unlock(&c->reg_lock);
  }
  unref(c);
}

/* Reserve the page holding [off, off + len) before a high-water mark
** passes into it (create.c: a page first touched on a full /dev/shm
** would fault). */
static int reserve_entry(dbpool_coord *c, size_t off, size_t len)
{
  return dbp_reserve_locked(c, off, len);
}

/* Under the pool lock: a free process record whose liveness lock we could
** take (one still locked belongs to a process that inherited a dead
** registrant's descriptor: leave it), growing the table if needed.
** Returns 0 and *out, 1 if every record is taken, or a negative errno (a
** full /dev/shm is -ENOSPC: not to be taken for a full table). */
static int claim_process_record_locked(dbpool_coord *c, unsigned *out)
{
  dbp_header *h = c->hdr;
  uint32_t phwm = dbp_process_hwm(h);
  for (uint32_t p = 0; p <= phwm && p < DBP_PROCESSES; p++) {
    if (p < phwm && atomic_load(&c->procs[p].state) != PROC_FREE) continue;
    if (p == phwm) {
      int rc = reserve_entry(c, DBP_PROCESSES_OFF + (size_t)p * sizeof(dbp_process),
                             sizeof(dbp_process));
      if (rc) return rc;
    }
    int rc = dbp_liveness_take(c, p);
    if (rc == -EAGAIN) continue;
    if (rc) return rc;
    if (p == phwm) atomic_store(&h->process_hwm, p + 1);
    *out = p;
    return 0;
  }
  return 1;
}

/* Register this process in the pool, once per process (c's registration
** lock held). */
int dbp_register_process(dbpool_coord *c)
{
  unsigned fgen = dbp_fork_gen();
  if (c->proc_idx >= 0 && c->proc_fork_gen == fgen) return 0;
  static unsigned cached_gen; /* who we are: once per process */
  static char comm[DBPOOL_PROCESS_NAME_MAX];
  if (cached_gen != fgen) {
    dbp_self_comm(comm);
    cached_gen = fgen;
  }
  if (c->db_fd < 0) {
    /* To tell, when we leave, whether the database file was deleted. An
    ** O_PATH descriptor: closing it never drops SQLite's POSIX locks. */
    c->db_fd = open(c->path, O_PATH | O_CLOEXEC);
    struct stat st;
    dbp_dbfile f;
    if (c->db_fd >= 0 && (fstat(c->db_fd, &st) != 0 || (uint64_t)st.st_ino != c->key.ino ||
                          dbp_dbfile_stat_quiet(c->path, &f) != 0 ||
                          !dbp_key_equal(&f.key, &c->key))) {
      close(c->db_fd);
      c->db_fd = -1;
    }
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
    unsigned p;
    rc = claim_process_record_locked(c, &p);
    if (rc == 0) {
      dbp_process *pr = &c->procs[p];
      uint32_t gen = atomic_fetch_add(&pr->gen, 1) + 1;
      atomic_store(&pr->pid, dbp_pid());
      atomic_store(&pr->attached_ns, dbp_real_ns());
      atomic_store(&pr->pidns, dbp_self_pidns());
      dbp_label_store(pr->comm, DBP_COMM_WORDS, comm);
      atomic_store(&pr->n_records, 0);
      atomic_store(&pr->state, PROC_LIVE);
      atomic_store(&h->last_used_ns, dbp_real_ns());
      c->proc_gen = gen;
      __atomic_store_n(&c->proc_fork_gen, fgen, __ATOMIC_RELAXED);
      __atomic_store_n(&c->proc_idx, (int)p, __ATOMIC_RELAXED);
      dbp_unlock(c);
      return 0;
    }
    dbp_unlock(c);
    if (rc < 0) return rc;
    if (attempt == 0) dbp_reap(c); /* every record taken: the dead's first */
  }
  return dbp_err(-ENOSPC, "dbpool: pool of %s has no free process record "
                 "(%u processes attached)", c->path, DBP_PROCESSES);
}

/* Under the pool lock: an unowned free record, DBP_REC_NONE if there is
** none, or a negative errno (a full /dev/shm). */
static int64_t alloc_record_locked(dbpool_coord *c)
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
    int rc = reserve_entry(c, DBP_RECORDS_OFF + (size_t)hwm * sizeof(dbp_record),
                           sizeof(dbp_record));
    if (rc) return rc;
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
    int rc = open_common(NULL, c->name, DBPOOL_OPEN_NOCREATE, NULL, NULL, &own);
    if (rc) return rc;
    rc = dbpool_holder_new(own, out);
    dbpool_coord_close(own); /* the holder keeps its own reference */
    return rc;
  }
  if (dbp_gate_snapshot(c->hdr).bits & G_REMOVED) /* (registration is cached) */
    return dbp_err(-ESTALE, "dbpool: pool %s of %s was removed; reopen it", c->name,
                   c->path);
  dbpool_holder *hd = calloc(1, sizeof *hd);
  if (!hd) return dbp_err(-ENOMEM, "dbpool: out of memory");

  dbp_registry_lock();
  c->refs++; /* the holder's */
  registry_unlock();
  pthread_mutex_lock(&c->reg_lock);
  int rc = dbp_register_process(c);
  if (rc == 0) c->holders++;
  pthread_mutex_unlock(&c->reg_lock);
  if (rc) {
    free(hd);
    unref(c);
    return rc;
  }
  int p = c->proc_idx;
  int64_t idx = DBP_REC_NONE;
  for (int attempt = 0; attempt < 2 && idx == DBP_REC_NONE; attempt++) {
    rc = dbp_lock(c, -1);
    if (rc) break;
    if (dbp_gate_load(c->hdr).bits & G_REMOVED) {
      /* Removed since we looked: under the lock, as removal is, so that a
      ** removal either sees this record (and refuses) or we see it. */
      dbp_unlock(c);
      rc = dbp_err(-ESTALE, "dbpool: pool %s of %s was removed; reopen it", c->name,
                   c->path);
      break;
    }
    idx = alloc_record_locked(c);
    if (idx < 0) rc = (int)idx;
    else if (idx != DBP_REC_NONE) {
      dbp_record *r = &c->recs[idx];
      atomic_store(&r->flags, 0);
      atomic_store(&r->joined, DBPOOL_JOINED_API);
      atomic_store(&r->tid, 0);
      atomic_store(&r->since_ns, 0);
      dbp_label_store(r->label, DBP_LABEL_WORDS, NULL);
      atomic_store(&r->owner, (uint32_t)p + 1);
      DBP_CRASH_POINT("record-claimed");
      atomic_fetch_add(&c->procs[p].n_records, 1);
    }
    dbp_unlock(c);
    if (idx == DBP_REC_NONE && attempt == 0) dbp_reap(c);
  }
  dbp_reap_if_idle(c); /* a process arriving looks for the dead now and then */
  if (rc == 0 && idx == DBP_REC_NONE) {
    char users[192];
    dbp_record_users(c, users, sizeof users);
    rc = dbp_err(-ENOSPC, "dbpool: pool of %s has no free holder record "
                 "(%u in use%s)", c->path, DBP_RECORDS, users);
  }
  if (rc) {
    free(hd);
    drop_holder(c, -1);
    return rc;
  }
  hd->c = c;
  hd->idx = (uint32_t)idx;
  hd->rec = &c->recs[idx];
  hd->proc_idx = p;
  hd->fork_gen = dbp_fork_gen();
  *out = hd;
  return 0;
}

void dbpool_holder_free(dbpool_holder *hd) { dbp_holder_free_linked(hd, -1); }

void dbp_holder_free_linked(dbpool_holder *hd, int linked)
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
        DBP_CRASH_POINT("record-unowned");
        atomic_store(&r->free_next, atomic_load(&c->hdr->free_head));
        atomic_store(&c->hdr->free_head, hd->idx);
        if (atomic_load(&c->procs[hd->proc_idx].n_records) > 0)
          atomic_fetch_sub(&c->procs[hd->proc_idx].n_records, 1);
      }
      dbp_unlock(c);
    }
  }
  free(hd);
  drop_holder(c, linked);
}

int dbpool_holder_held(const dbpool_holder *hd) { return hd && hd->held; }

unsigned dbp_holder_record(const dbpool_holder *hd) { return hd ? hd->idx : DBP_REC_NONE; }

dbpool_coord *dbp_holder_coord(const dbpool_holder *hd) { return hd ? hd->c : NULL; }

int dbpool_holder_set_label(dbpool_holder *hd, const char *label)
{
  if (!hd) return dbp_err(-EINVAL, "dbpool: set_label: holder is NULL");
  if (hd->fork_gen != dbp_fork_gen())
    return dbp_err(-EPERM, "dbpool: holder belongs to another process");
  dbp_label_store(hd->rec->label, DBP_LABEL_WORDS, label);
  return 0;
}

void dbp_holder_set_idle(dbpool_holder *hd, int idle)
{
  if (!hd || hd->fork_gen != dbp_fork_gen()) return;
  atomic_store_explicit(&hd->rec->flags, idle ? REC_FLAG_IDLE : 0,
                        memory_order_relaxed);
}

int dbp_coord_set_record_label(dbpool_coord *c, unsigned record, const char *label)
{
  if (!c || !dbp_rec_in(c->hdr, record))
    return dbp_err(-EINVAL, "dbpool: set_record_label: no record %u", record);
  if (c->readonly)
    return dbp_err(-EROFS, "dbpool: pool of %s is attached read-only", c->path);
  dbp_record *r = &c->recs[record];
  uint32_t owner = atomic_load(&r->owner);
  if (owner < 1 || owner > dbp_process_hwm(c->hdr) ||
      atomic_load(&c->procs[owner - 1].pid) != dbp_pid() ||
      atomic_load(&c->procs[owner - 1].pidns) != dbp_self_pidns())
    return dbp_err(-EPERM, "dbpool: record %u of %s is not held by this "
                   "process", record, c->path);
  dbp_label_store(r->label, DBP_LABEL_WORDS, label);
  return 0;
}

int dbp_coord_record_label(dbpool_coord *c, unsigned record, char *buf, size_t cap)
{
  char tmp[DBPOOL_LABEL_MAX];
  if (!buf || cap == 0) return dbp_err(-EINVAL, "dbpool: record_label: no buffer");
  buf[0] = 0;
  if (!c || !dbp_rec_in(c->hdr, record))
    return dbp_err(-EINVAL, "dbpool: record_label: no record %u", record);
  dbp_label_load(c->recs[record].label, DBP_LABEL_WORDS, tmp);
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

int dbp_coord_removed(const dbpool_coord *c)
{
  return c && (dbp_gate_snapshot(c->hdr).bits & G_REMOVED) != 0;
}

/* Under c's lock: take a slot for hd whatever the limit, the pause or the
** queue (a connection that was already open before its pool was removed). */
static int acquire_regardless(dbpool_holder *hd)
{
  dbpool_coord *c = hd->c;
  int rc = dbp_lock(c, -1);
  if (rc) return rc;
  dbp_gate g = dbp_gate_load(c->hdr);
  for (;;) {
    dbp_gate_help(c, g);
    if (g.bits & G_REMOVED) {
      dbp_unlock(c);
      return dbp_err(-ESTALE, "dbpool: pool %s of %s was removed; reopen it", c->name,
                     c->path);
    }
    dbp_gate n = dbp_gate_op(g, hd->idx, false);
    if (dbp_gate_cas(c->hdr, &g, n)) {
      atomic_store_explicit(&hd->rec->word, REC_WORD(REC_HELD, n.seq),
                            memory_order_release);
      break;
    }
  }
  dbp_unlock(c);
  hd->held = true;
  return 0;
}

int dbp_holder_rejoin(dbpool_holder **hp, const char *db_path)
{
  dbpool_holder *old = hp ? *hp : NULL;
  if (!old || old->fork_gen != dbp_fork_gen() || !dbp_coord_removed(old->c)) return 0;
  dbpool_coord *c;
  dbpool_holder *nh = NULL;
  int rc = 0;
  for (int attempt = 0; attempt < 3; attempt++) {
    rc = dbpool_coord_open(db_path, 0, &c);
    if (rc) return rc;
    rc = dbpool_holder_new(c, &nh);
    dbpool_coord_close(c); /* the holder keeps its reference */
    if (rc == 0 && old->held) rc = acquire_regardless(nh);
    if (rc == 0) break;
    dbpool_holder_free(nh);
    nh = NULL;
    if (rc != -ESTALE) return rc;
  }
  if (rc) return rc;
  char label[DBPOOL_LABEL_MAX];
  dbp_label_load(old->rec->label, DBP_LABEL_WORDS, label);
  dbp_label_store(nh->rec->label, DBP_LABEL_WORDS, label);
  dbpool_holder_free(old); /* gives the slot back in the removed pool */
  *hp = nh;
  return 1;
}
