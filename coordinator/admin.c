/*
** admin.c -- listing, removing and collecting pools.
**
** Listing only reads: it never removes, reclaims or rewrites anything.
**
** Remove: under the pool lock, with no live process attached (unless
**         forced), set REMOVED in the gate, wake every waiter, and unlink
**         the name if we may (its owner or root: /dev/shm is sticky). A
**         removed segment whose name stays is skipped by every opener
**         (naming.c), so a removal never leaves two pools in use for one
**         database; its owner or root collects it later.
** Collect (gc): pools whose database file is gone or was replaced and that
**         no live process uses, pools marked removed, and pools owned by a
**         user who can no longer read the database, if nobody uses them. A
**         database renamed within its directory is found and its pool kept.
** At leave: when the last process using a pool leaves and the database
**         file has no name left (deleted, or replaced by another file), the
**         pool goes at once: after making sure the file now at its path (if
**         any) has a pool with its settings.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Root, or the segment's owner (/dev/shm is sticky). c is attached: its
** descriptor is open. */
bool dbp_unlink_allowed(const dbpool_coord *c)
{
  struct stat st;
  if (geteuid() == 0) return true;
  if (fstat(c->fd, &st) != 0) return false; /* GCOVR_EXCL_BR_LINE: fstat of the open descriptor of an attached segment; not failable */
  return st.st_uid == geteuid();
}

/* Does c's name still refer to c's segment: 1 yes, 0 no (gone or another
** file), a negative errno if we cannot tell (then it must not be unlinked). */
static int still_ours(const dbpool_coord *c)
{
  char path[PATH_MAX];
  struct stat st;
  dbp_shm_path(c->name, path, sizeof path);
  if (stat(path, &st) != 0) return errno == ENOENT ? 0 : -errno; /* (no directory in the name) */
  return (uint64_t)st.st_ino == c->seg_ino && (uint64_t)st.st_dev == c->seg_dev;
}

/* Under the lock: mark removed, wake every waiter, unlink if we may. Only
** under the segment's own lock may its name be unlinked: linkat never
** replaces a name, so the check and the unlink cannot be split by another
** pool's creation. Returns 0 if the name is gone, -EPERM if only its owner
** or root may delete it, or another negative errno: why it could not be
** (the name is then left for gc). */
static int remove_locked(dbpool_coord *c)
{
  dbp_gate_set_flags(c, G_REMOVED | G_SLOW, 0);
  dbp_coord_wake_listeners(c); /* in-process pools' housekeepers: look */
  uint32_t hwm = dbp_record_hwm(c->hdr);
  for (uint32_t i = 0; i < hwm; i++) {
    dbp_record *r = &c->recs[i];
    if (REC_STATE(atomic_load(&r->word)) != REC_WAITING) continue;
    atomic_fetch_add(&r->wake, 1);
    dbp_futex_wake(&r->wake, INT_MAX, DBP_FUTEX_SHARED);
  }
  int ours = still_ours(c);
  if (ours <= 0) return ours; /* gone already; or unknown */
  if (!dbp_unlink_allowed(c)) return -EPERM;
  char path[PATH_MAX];
  dbp_shm_path(c->name, path, sizeof path);
  return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
}

void dbp_remove_locked(dbpool_coord *c) { remove_locked(c); }

/* Under the lock: live processes that use the pool (own holders; a
** process keeps its registration while it keeps the pool mapped), the first
** pids. Our own registration counts: c is a fresh attachment (remove, gc),
** or one whose registration was just dropped (dbp_remove_if_deleted). */
static int live_processes(dbpool_coord *c, int *pids, int cap)
{
  int n = 0;
  uint32_t phwm = dbp_process_hwm(c->hdr);
  for (uint32_t p = 0; p < phwm; p++) {
    if (atomic_load(&c->procs[p].state) != PROC_LIVE) continue;
    if (atomic_load(&c->procs[p].n_records) == 0) continue;
    if (!dbp_process_alive(c, p)) continue;
    if (n < cap) pids[n] = atomic_load(&c->procs[p].pid);
    n++;
  }
  return n;
}

/* Marked removed, but the name is left (remove_locked's e): 1, and the
** last error says why (the CLI prints it). */
static int name_left(int e)
{
  if (e == -EPERM) dbp_err(e, "dbpool: only the segment's owner or root can delete it");
  else dbp_err(e, "dbpool: its name could not be deleted (%s)", strerror(-e));
  return 1;
}

/* 0: removed; 1: marked removed, name left (the last error says why). */
static int remove_segment(dbpool_coord *c, bool force)
{
  int rc = dbp_steer_check(c, "remove");
  if (rc) return rc;
  dbp_reap(c);
  if ((rc = dbp_lock(c, -1))) return rc;
  int pids[8], live = live_processes(c, pids, 8);
  if (live > 0 && !force) {
    dbp_unlock(c);
    char list[128] = "";
    size_t off = 0;
    for (int i = 0; i < live && i < 8; i++) /* 8 x ", -2147483648" fit */
      off += (size_t)snprintf(list + off, sizeof list - off, "%s%d", i ? ", " : "",
                              pids[i]);
    return dbp_err(-EBUSY, "dbpool: pool of %s is in use by %d live process%s "
                   "(pid %s%s)", c->path, live, live == 1 ? "" : "es", list,
                   live > 8 ? ", ..." : "");
  }
  int e = remove_locked(c);
  dbp_unlock(c);
  return e ? name_left(e) : 0;
}

/* Forced removal of something under a pool's name that we cannot attach
** to (corrupt, foreign): unlink the name itself, if the file system lets
** us (/dev/shm is sticky: its owner or root). */
static int unlink_unattachable(const char *db_path, const char *segment_name)
{
  char name[DBP_SEGMENT_NAME_MAX], path[PATH_MAX];
  const char *ns;
  if (db_path) {
    dbp_dbfile db;
    if (dbp_namespace(&ns) != 0 || dbp_dbfile_stat(db_path, &db) != 0) return -1;
    dbp_segment_name(ns, &db.key, 0, name);
  } else { /* a valid name: the attach that failed parsed it */
    snprintf(name, sizeof name, "/%s", segment_name[0] == '/' ? segment_name + 1 : segment_name);
  }
  dbp_shm_path(name, path, sizeof path);
  if (unlink(path) != 0)
    return dbp_err(-errno, "dbpool: cannot remove %s: %s", path, strerror(errno));
  return 0;
}

int dbpool_coord_remove(const char *db_path, const char *segment_name, int force)
{
  dbpool_coord *c = NULL;
  dbp_clear_error();
  int rc = dbp_segment_attach(db_path, db_path ? NULL : segment_name,
                              DBPOOL_OPEN_NOCREATE, NULL, &c);
  if (force && (rc == -EBADMSG || rc == -EACCES))
    return unlink_unattachable(db_path, segment_name);
  if (rc) return rc;
  rc = remove_segment(c, force != 0);
  /* A lock nobody can take again: nobody can be asked either. Forced, mark
  ** the pool removed without it (the gate needs no lock) and delete it. */
  if (rc == -ENOTRECOVERABLE && force) {
    int e = remove_locked(c);
    rc = e ? name_left(e) : 0;
  }
  dbp_segment_unmap(c);
  free(c);
  return rc;
}

/* ------------------------------------------------------------ listing */

typedef struct { char **names; size_t n, cap; } name_list;

static void free_names(name_list *l)
{
  for (size_t i = 0; i < l->n; i++) free(l->names[i]);
  free(l->names);
  *l = (name_list){0};
}

static int add_name(name_list *l, const char *d_name)
{
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    char **p = realloc(l->names, cap * sizeof *p);
    if (!p) return -ENOMEM;
    l->names = p;
    l->cap = cap;
  }
  size_t len = strlen(d_name) + 2;
  char *s = malloc(len);
  if (!s) return -ENOMEM;
  snprintf(s, len, "/%s", d_name);
  l->names[l->n++] = s;
  return 0;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The segment names of our namespace, sorted. An error is an error: a
** listing never silently drops pools. */
static int collect_names(name_list *out)
{
  const char *ns;
  int rc = dbp_namespace(&ns);
  if (rc) return rc;
  DIR *d = opendir(DBP_SHM_DIR);
  if (!d)
    return dbp_err(-errno, "dbpool: cannot list " DBP_SHM_DIR ": %s", strerror(errno));
  struct dirent *e;
  errno = 0;
  while (rc == 0 && (e = readdir(d))) {
    char ens[33];
    dbp_key k;
    unsigned cand;
    if (!dbp_parse_segment_name(e->d_name, ens, &k, &cand) || strcmp(ens, ns) != 0)
      continue;
    rc = add_name(out, e->d_name);
  }
  if (rc == 0 && errno != 0) rc = -errno;
  closedir(d);
  if (rc == -ENOMEM) rc = dbp_err(rc, "dbpool: list: out of memory");
  else if (rc) rc = dbp_err(rc, "dbpool: cannot list " DBP_SHM_DIR ": %s", strerror(-rc));
  if (rc) {
    free_names(out);
    return rc;
  }
  if (out->n) qsort(out->names, out->n, sizeof *out->names, cmp_str);
  return 0;
}

int dbp_list_skips(int err)
{
  return err == -ENOENT || err == -EACCES || err == -EBADMSG;
}

int dbpool_coord_list(dbpool_coord_list_cb cb, void *arg)
{
  if (!cb) return dbp_err(-EINVAL, "dbpool: list: callback is NULL");
  name_list l = {0};
  int rc = collect_names(&l);
  for (size_t i = 0; i < l.n && rc == 0; i++) rc = cb(l.names[i], arg);
  free_names(&l);
  return rc;
}

/* ------------------------------------------------------- file states */

/* Look in the recorded path's directory for the file under another name
** (a rename within the directory). found receives its path. */
static bool find_renamed(const char *recorded, const dbp_key *k, char *found, size_t cap)
{
  char dir[DBPOOL_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", recorded);
  char *slash = strrchr(dir, '/');
  if (!slash) return false;
  if (slash == dir) slash[1] = 0; else *slash = 0;
  DIR *d = opendir(dir);
  if (!d) return false;
  bool hit = false;
  struct dirent *e;
  while (!hit && (e = readdir(d))) {
    if (e->d_ino != k->ino || (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)) continue;
    char path[PATH_MAX];
    dbp_dbfile f;
    snprintf(path, sizeof path, "%s/%s", strcmp(dir, "/") ? dir : "", e->d_name);
    if (strlen(path) < cap && dbp_dbfile_stat_quiet(path, &f) == 0 &&
        dbp_key_equal(&f.key, k)) {
      memcpy(found, path, strlen(path) + 1);
      hit = true;
    }
  }
  closedir(d);
  return hit;
}

/* The file state, and for DBPOOL_FILE_UNKNOWN why (a negative errno). */
static dbpool_file_state file_state(dbpool_coord *c, int *err)
{
  dbp_dbfile f;
  *err = 0;
  if (dbp_gate_snapshot(c->hdr).bits & G_REMOVED) return DBPOOL_FILE_REMOVED;
  char path[DBPOOL_PATH_MAX];
  dbpool_coord_database(c, path, sizeof path);
  int rc = dbp_dbfile_stat_quiet(path, &f);
  if (rc == 0 && dbp_key_equal(&f.key, &c->key)) return DBPOOL_FILE_OK;
  if (rc == 0 || rc == -EINVAL) return DBPOOL_FILE_REPLACED;
  if (rc == -ENOENT || rc == -ENOTDIR) return DBPOOL_FILE_GONE;
  *err = rc;
  return DBPOOL_FILE_UNKNOWN;
}

dbpool_file_state dbpool_coord_file_state(dbpool_coord *c)
{
  int err;
  return c ? file_state(c, &err) : DBPOOL_FILE_GONE;
}

/* --------------------------------------------------------- collecting */

static void report(dbpool_coord_gc_cb cb, void *arg, const char *segment,
                   const char *database, dbpool_gc_action action, const char *why)
{
  dbpool_gc_entry e = {.size = sizeof e, .segment = segment, .database = database,
                       .action = action, .reason = why};
  if (cb) cb(&e, arg);
}

/* Decide about one pool; remove it unless dry_run. Returns 1 if removed
** (or would be). */
static int gc_one(const char *name, bool dry_run, dbpool_coord_gc_cb cb, void *arg)
{
  dbpool_coord *c = NULL;
  char why[DBPOOL_PATH_MAX + 64];
  int rc = dbp_segment_attach(NULL, name, 0, NULL, &c);
  if (rc == -EACCES || rc == -EPERM) rc = dbp_segment_attach(NULL, name,
                                                              DBPOOL_OPEN_READONLY, NULL, &c);
  if (rc) {
    report(cb, arg, name, "", DBPOOL_GC_KEPT, dbpool_last_error());
    return 0;
  }
  int fs_err;
  dbpool_file_state fs = file_state(c, &fs_err);
  dbp_dbfile db;
  bool trusted = true;
  struct stat st;
  if (fs == DBPOOL_FILE_OK && dbp_dbfile_stat_quiet(c->path, &db) == 0 &&
      fstat(c->fd, &st) == 0)
    trusted = dbp_perms_owner_trusted(c->path, &db, st.st_uid, st.st_gid);
  char renamed[DBPOOL_PATH_MAX];
  if (fs == DBPOOL_FILE_GONE && find_renamed(c->path, &c->key, renamed, sizeof renamed)) {
    snprintf(why, sizeof why, "database renamed to %s", renamed);
    if (!dry_run && !c->readonly && dbp_lock(c, -1) == 0) {
      snprintf(c->hdr->path, sizeof c->hdr->path, "%s", renamed);
      dbp_unlock(c);
    }
    report(cb, arg, name, renamed, DBPOOL_GC_KEPT, why);
    goto out;
  }
  const char *reason = fs == DBPOOL_FILE_REMOVED ? "removed"
                     : fs == DBPOOL_FILE_GONE ? "database file is gone"
                     : fs == DBPOOL_FILE_REPLACED ? "database file was replaced"
                     : !trusted ? "owned by a user who cannot read the database"
                     : NULL;
  if (fs == DBPOOL_FILE_UNKNOWN) {
    snprintf(why, sizeof why, "cannot tell where its database file is (%s)",
             strerror(-fs_err));
    report(cb, arg, name, c->path, DBPOOL_GC_KEPT, why);
    goto out;
  }
  if (!reason) {
    report(cb, arg, name, c->path, DBPOOL_GC_KEPT, "in use by its database");
    goto out;
  }
  if (!c->steer_ok) {
    snprintf(why, sizeof why, "%s, but uid %u may not remove it (it needs write "
             "permission on the database, or to own the segment)", reason,
             (unsigned)geteuid());
    report(cb, arg, name, c->path, DBPOOL_GC_KEPT, why);
    goto out;
  }
  if (!c->readonly) dbp_reap(c);
  int pids[1];
  if (c->readonly || dbp_lock(c, -1) != 0) {
    snprintf(why, sizeof why, "%s, but uid %u may not change it", reason,
             (unsigned)geteuid());
    report(cb, arg, name, c->path, DBPOOL_GC_KEPT, why);
    goto out;
  }
  int live = live_processes(c, pids, 1);
  if (live) {
    dbp_unlock(c);
    snprintf(why, sizeof why, "%s, but %d live process%s use%s it", reason, live,
             live == 1 ? "" : "es", live == 1 ? "s" : "");
    report(cb, arg, name, c->path, DBPOOL_GC_KEPT, why);
    goto out;
  }
  if (dry_run) {
    dbp_unlock(c);
    report(cb, arg, name, c->path, DBPOOL_GC_WOULD_REMOVE, reason);
    rc = 1;
    goto out;
  }
  int e = remove_locked(c);
  dbp_unlock(c);
  if (e == 0) {
    report(cb, arg, name, c->path, DBPOOL_GC_REMOVED, reason);
    rc = 1;
  } else {
    if (e == -EPERM)
      snprintf(why, sizeof why, "%s; marked removed, but only its owner or root "
               "can delete it", reason);
    else
      snprintf(why, sizeof why, "%s; marked removed, but its name could not be "
               "deleted: %s", reason, strerror(-e));
    report(cb, arg, name, c->path, DBPOOL_GC_KEPT, why);
  }
out:
  dbp_segment_unmap(c);
  free(c);
  return rc;
}

int dbpool_coord_gc(int dry_run, dbpool_coord_gc_cb cb, void *arg)
{
  name_list l = {0};
  int rc = collect_names(&l);
  int removed = 0;
  for (size_t i = 0; i < l.n && rc == 0; i++) removed += gc_one(l.names[i], dry_run, cb, arg);
  free_names(&l);
  return rc ? rc : removed;
}

/* ------------------------------------------------- when the last leaves */

/* Called by a process whose last holder of c just left, without locks: if
** nobody else uses the pool and its database file has no name left, make
** sure the file now at its path has a pool (taking over our settings), then
** remove ours. */
void dbp_remove_if_deleted(dbpool_coord *c)
{
  struct stat st;
  if (c->db_fd < 0 || fstat(c->db_fd, &st) != 0 || st.st_nlink > 0) /* (registered: not read-only) */
    return;
  int pids[1];
  if (dbp_lock(c, -1) != 0) return;
  bool idle = live_processes(c, pids, 1) == 0 && g_active(dbp_gate_load(c->hdr).bits) == 0 &&
              atomic_load(&c->hdr->n_waiting) == 0;
  dbp_unlock(c);
  if (!idle) return;
  dbp_dbfile f;
  if (dbp_dbfile_stat_quiet(c->path, &f) == 0 && !dbp_key_equal(&f.key, &c->key)) {
    dbpool_coord *successor = NULL; /* inherits from us: we are not removed yet */
    if (dbp_segment_attach(c->path, NULL, 0, NULL, &successor) == 0) {
      dbp_segment_unmap(successor);
      free(successor);
    }
  }
  if (dbp_lock(c, -1) != 0) return;
  if (live_processes(c, pids, 1) == 0 && g_active(dbp_gate_load(c->hdr).bits) == 0 &&
      atomic_load(&c->hdr->n_waiting) == 0)
    remove_locked(c);
  dbp_unlock(c);
}
