/*
** attach.c -- finding the pool of a database and attaching to it.
**
** The pool of a database is the first of its candidate names (naming.c)
** holding a segment that its users can use: one whose owner can read the
** database and that is not marked removed. Only when none exists is one
** created (create.c), under the first free name. Every header field is
** validated; every other byte stays untrusted.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "internal.h"
#include "writer.h"

#define ATTACH_ATTEMPTS 16

/* ---------------------------------------------------------------- attach */

static int validate_header(const dbp_header *h, const char *name, const dbp_key *k)
{
  const char *what = NULL;
  dbp_gate g = dbp_gate_snapshot(h);
  if (h->magic != DBP_MAGIC) what = "bad magic number";
  else if (h->layout_version != DBP_LAYOUT_VERSION) what = "unknown layout version";
  else if (h->header_size != sizeof(dbp_header)) what = "header size differs";
  else if (h->segment_size != DBP_SEGMENT_SIZE) what = "segment size differs";
  else if (h->records != DBP_RECORDS || h->processes != DBP_PROCESSES)
    what = "table sizes differ";
  else if (h->mutex_size != sizeof(pthread_mutex_t)) what = "made by another ABI";
  else if (h->key_dev != k->dev || h->key_ino != k->ino || h->key_birth != k->birth)
    what = "belongs to another database file";
  else if (g_max(g.bits) < 1 || g_max(g.bits) > DBPOOL_MAX_CONNECTIONS_LIMIT)
    what = "max_connections out of range";
  else if (!memchr(h->path, 0, sizeof h->path)) what = "path not terminated";
  if (!what) return 0;
  return dbp_err(-EBADMSG, "dbpool: pool segment %s failed validation: %s",
                 name, what);
}

/* Open a segment by name: never blocks (a FIFO planted under the name
** would), and refuses anything but a regular file of the right size before
** anything maps it (a short file would fault on access). Returns the fd,
** or -1 with errno set (EBADMSG: not a segment; *why says how). */
static int open_fd(const char *name, bool ro, struct stat *st, const char **why)
{
  char path[PATH_MAX];
  dbp_shm_path(name, path, sizeof path);
  int fd;
  do fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return -1;
  *why = NULL;
  if (fstat(fd, st) != 0) { /* not the segment's fault: errno says why */
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  if (!S_ISREG(st->st_mode)) *why = "not a regular file";
  else if ((uint64_t)st->st_size != DBP_SEGMENT_SIZE) *why = "wrong size";
  if (*why) {
    close(fd);
    errno = EBADMSG;
    return -1;
  }
  return fd;
}

/* Does name still refer to the segment file (dev, ino)? */
/* Map segment fd (read-only when ro) into *out; on failure fd is closed
** and the error names the segment. */
static int map_segment(int fd, bool ro, const char *name, dbp_header **out)
{
  *out = mmap(NULL, DBP_SEGMENT_SIZE, ro ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED,
              fd, 0);
  if (*out != MAP_FAILED) return 0;
  int e = errno;
  close(fd);
  return dbp_err(-e, "dbpool: cannot map pool segment %s: %s", name, strerror(e));
}

static bool name_is(const char *name, uint64_t dev, uint64_t ino)
{
  char path[PATH_MAX];
  struct stat st;
  dbp_shm_path(name, path, sizeof path);
  return stat(path, &st) == 0 && (uint64_t)st.st_ino == ino &&
         (uint64_t)st.st_dev == dev;
}

bool dbp_segment_still_linked(const dbpool_coord *c)
{
  return name_is(c->name, c->seg_dev, c->seg_ino);
}

void dbp_segment_unmap(dbpool_coord *c)
{
  if (c->reg_lock_init) pthread_mutex_destroy(&c->reg_lock);
  c->reg_lock_init = false;
  if (c->hdr) munmap(c->hdr, c->map_size);
  c->hdr = NULL;
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  if (c->db_fd >= 0) close(c->db_fd);
  c->db_fd = -1;
  if (c->lock_fd >= 0) close(c->lock_fd);
  c->lock_fd = -1;
}

/* An attachment for the segment open on fd (which it keeps). */
static dbpool_coord *new_attachment(int fd, const struct stat *st, dbp_header *h,
                                    const char *name, const dbp_key *k, bool ro)
{
  dbpool_coord *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->hdr = h;
  c->procs = (dbp_process *)((char *)h + DBP_PROCESSES_OFF);
  c->recs = (dbp_record *)((char *)h + DBP_RECORDS_OFF);
  c->map_size = DBP_SEGMENT_SIZE;
  c->fd = fd;
  c->lock_fd = -1;
  c->db_fd = -1;
  c->readonly = ro;
  c->key = *k;
  c->seg_dev = (uint64_t)st->st_dev;
  c->seg_ino = (uint64_t)st->st_ino;
  c->proc_idx = -1;
  c->fork_gen = dbp_fork_gen();
  c->linked_checked_ns = dbp_mono_coarse_ns();
  pthread_mutex_init(&c->reg_lock, NULL);
  c->reg_lock_init = true;
  snprintf(c->name, sizeof c->name, "%s", name);
  dbp_key parsed;
  unsigned cand;
  if (!dbp_parse_segment_name(name, c->ns, &parsed, &cand)) c->ns[0] = 0; /* GCOVR_EXCL_BR_LINE: both callers pass a name that parsed (made by dbp_segment_name, or checked by attach_by_name) */
  memcpy(c->path, h->path, sizeof c->path);
  c->path[sizeof c->path - 1] = 0;
  return c;
}

/* Keep the recorded path true after a rename of the database: when the
** pool is attached by a path other than the recorded one, and the recorded
** one no longer names the file (another name of the same file, a hard
** link, keeps the first). Cheap when the paths agree: one compare. */
void dbp_follow_rename(dbpool_coord *c, const char *db_path)
{
  dbp_dbfile cur;
  if (c->readonly || strncmp(c->hdr->path, db_path, sizeof c->hdr->path) == 0) return;
  int rc = dbp_dbfile_stat_quiet(c->hdr->path, &cur);
  if (rc == 0 ? dbp_key_equal(&cur.key, &c->key) : rc != -ENOENT && rc != -ENOTDIR)
    return; /* still a name of the file, or one we cannot look at: keep it */
  char *abs = realpath(db_path, NULL);
  if (!abs || strlen(abs) >= sizeof c->hdr->path ||
      dbp_dbfile_stat_quiet(abs, &cur) != 0 || !dbp_key_equal(&cur.key, &c->key)) {
    free(abs);
    return;
  }
  if (dbp_lock(c, -1) == 0) {
    memcpy(c->hdr->path, abs, strlen(abs) + 1);
    dbp_unlock(c);
  }
  snprintf(c->path, sizeof c->path, "%s", abs);
  free(abs);
}

/* A stand-in attachment for a segment we look at without attaching, so
** that its lock can be taken. */
static void temp_coord(dbpool_coord *tmp, int fd, const struct stat *st, dbp_header *h,
                       const char *name)
{
  memset(tmp, 0, sizeof *tmp);
  tmp->hdr = h;
  tmp->fd = fd;
  tmp->db_fd = tmp->lock_fd = -1;
  tmp->map_size = DBP_SEGMENT_SIZE;
  tmp->procs = (dbp_process *)((char *)h + DBP_PROCESSES_OFF);
  tmp->recs = (dbp_record *)((char *)h + DBP_RECORDS_OFF);
  tmp->seg_dev = (uint64_t)st->st_dev;
  tmp->seg_ino = (uint64_t)st->st_ino;
  tmp->proc_idx = -1;
  snprintf(tmp->name, sizeof tmp->name, "%s", name);
}

/* A segment marked removed whose name is still linked: unlink it, under
** its lock, if we may. Returns true if the name is gone now. */
static bool unlink_removed(int fd, const struct stat *st, dbp_header *h,
                           const char *name)
{
  dbpool_coord tmp;
  temp_coord(&tmp, fd, st, h, name);
  if (!dbp_unlink_allowed(&tmp)) return false;
  if (dbp_lock(&tmp, dbp_mono_ns() + 1000000000) != 0) return false;
  char path[PATH_MAX];
  dbp_shm_path(name, path, sizeof path);
  bool gone = !name_is(name, tmp.seg_dev, tmp.seg_ino) || unlink(path) == 0;
  dbp_unlock(&tmp);
  return gone;
}

/* A removed segment that we skip but cannot unlink, kept mapped while we
** create a pool under a later name: its lock, held across the creation,
** keeps its owner from unlinking it and re-creating a pool under its name
** at the same time (every unlink of a removed segment takes its lock), so
** that two pools for one database can never both be found usable. */
typedef struct guard {
  int fd;
  struct stat st;
  dbp_header *h;
  char name[DBP_SEGMENT_NAME_MAX];
} guard;

typedef struct guards {
  unsigned n;
  guard g[DBP_CANDIDATES];
} guards;

static void guards_release(guards *gs)
{
  for (unsigned i = 0; i < gs->n; i++) {
    munmap(gs->g[i].h, DBP_SEGMENT_SIZE);
    close(gs->g[i].fd);
  }
  gs->n = 0;
}

/* Lock every guard (in candidate order); false if one is gone (unlinked
** meanwhile: the scan must start over). Locked ones are in *locked. */
static bool guards_lock(guards *gs, unsigned *locked)
{
  *locked = 0;
  for (unsigned i = 0; i < gs->n; i++) {
    dbpool_coord tmp;
    guard *g = &gs->g[i];
    temp_coord(&tmp, g->fd, &g->st, g->h, g->name);
    if (dbp_lock(&tmp, dbp_mono_ns() + 1000000000) != 0) return false;
    (*locked)++;
    if (!name_is(g->name, (uint64_t)g->st.st_dev, (uint64_t)g->st.st_ino)) return false;
  }
  return true;
}

static void guards_unlock(guards *gs, unsigned locked)
{
  for (unsigned i = 0; i < locked; i++) {
    dbpool_coord tmp;
    guard *g = &gs->g[i];
    temp_coord(&tmp, g->fd, &g->st, g->h, g->name);
    dbp_unlock(&tmp);
  }
}

enum { CAND_USED, CAND_ABSENT, CAND_SKIP, CAND_RETRY };

/* Mark an attached pool removed, so that its users leave it: waiters are
** woken, and holders move to the pool every opener now finds. */
void dbp_mark_removed(dbpool_coord *c)
{
  if (c->readonly || dbp_lock(c, dbp_mono_ns() + 1000000000) != 0) return;
  dbp_remove_locked(c);
  dbp_unlock(c);
}

/* A segment we may write but must not use (its owner cannot read the
** database): mark it removed, so that whoever still uses it -- attached
** before the database's permissions changed -- moves to the real pool. */
static void demote_untrusted(int fd, const struct stat *st, const char *name,
                             const dbp_key *k)
{
  dbp_header *h = mmap(NULL, DBP_SEGMENT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (h == MAP_FAILED) return;
  if (validate_header(h, name, k) == 0) {
    dbpool_coord tmp;
    temp_coord(&tmp, fd, st, h, name);
    dbp_mark_removed(&tmp);
  }
  munmap(h, DBP_SEGMENT_SIZE);
}

/* Try candidate name for the database db: *out on CAND_USED; a negative
** errno on an error that must be reported. */
static int try_candidate(const char *name, unsigned cand, const char *db_path,
                         const dbp_dbfile *db, bool ro, dbpool_coord **out, guards *gs)
{
  struct stat st;
  const char *why = NULL;
  int fd = open_fd(name, ro, &st, &why);
  if (fd < 0) {
    int e = errno;
    char path[PATH_MAX];
    struct stat lst;
    dbp_shm_path(name, path, sizeof path);
    if (e == ENOENT) return CAND_ABSENT;
    if (lstat(path, &lst) == 0 && !dbp_perms_owner_trusted(db_path, db, lst.st_uid, lst.st_gid))
      return CAND_SKIP; /* planted, or left by a former reader: not the pool */
    if (e == EBADMSG)
      return dbp_err(-EBADMSG, "dbpool: pool segment %s failed validation: %s",
                     name, why);
    if (e == EACCES)
      return dbp_err(-EACCES, "dbpool: pool segment %s of %s is not open to uid "
                     "%u, although it may read the database: the segment's "
                     "permissions predate a change of the database's; its owner "
                     "(uid %u) or root fixes them by using the database (e.g. "
                     "dbpoolctl status %s)", name, db_path, (unsigned)geteuid(),
                     (unsigned)lst.st_uid, db_path);
    return dbp_err(-e, "dbpool: cannot open pool segment %s of %s: %s", name,
                   db_path, strerror(e));
  }
  if (!dbp_perms_owner_trusted(db_path, db, st.st_uid, st.st_gid)) {
    if (!ro) demote_untrusted(fd, &st, name, &db->key);
    close(fd);
    return CAND_SKIP;
  }
  if (!ro && (st.st_uid == geteuid() || geteuid() == 0)) {
    int rc = dbp_perms_apply(fd, db_path, db, false); /* follow chmod, chown */
    if (rc) {
      close(fd);
      return rc;
    }
  }
  dbp_header *h;
  int mrc = map_segment(fd, ro, name, &h);
  if (mrc) return mrc;
  int rc = validate_header(h, name, &db->key);
  if (rc == 0 && (dbp_gate_snapshot(h).bits & G_REMOVED)) {
    /* Removed: by its owner or root (unlink it and start over), or by
    ** someone who could not unlink it (leave it to them: skip it, and guard
    ** it while we create elsewhere). */
    rc = (!ro && unlink_removed(fd, &st, h, name)) ? CAND_RETRY : CAND_SKIP;
    if (rc == CAND_SKIP && !ro && gs && gs->n < DBP_CANDIDATES) {
      guard *g = &gs->g[gs->n++];
      g->fd = fd;
      g->st = st;
      g->h = h;
      snprintf(g->name, sizeof g->name, "%s", name);
      return CAND_SKIP;
    }
  }
  dbpool_coord *c = rc == 0 ? new_attachment(fd, &st, h, name, &db->key, ro) : NULL;
  if (rc == 0 && !c) rc = dbp_err(-ENOMEM, "dbpool: out of memory");
  if (rc != 0) {
    munmap(h, DBP_SEGMENT_SIZE);
    close(fd);
    return rc;
  }
  c->by_path = true;
  c->cand = cand;
  c->db_uid = db->uid;
  c->db_gid = db->gid;
  c->db_mode = db->mode;
  dbp_follow_rename(c, db->abs);
  c->steer_ok = dbp_can_write(db_path);
  *out = c;
  return CAND_USED;
}

/* Is candidate cand of db a usable pool (without attaching to it)? */
static bool candidate_usable(const char *ns, const dbp_dbfile *db, const char *db_path,
                             unsigned cand, bool writable, dbpool_coord **out)
{
  char name[DBP_SEGMENT_NAME_MAX];
  dbpool_coord *c = NULL;
  dbp_segment_name(ns, &db->key, cand, name);
  char saved[512];
  snprintf(saved, sizeof saved, "%s", dbpool_last_error());
  int rc = try_candidate(name, cand, db_path, db, !writable, &c, NULL);
  dbp_err(0, "%s", saved); /* a probe: keep the caller's message */
  if (rc != CAND_USED) return false;
  if (out) *out = c;
  else {
    dbp_segment_unmap(c);
    free(c);
  }
  return true;
}

bool dbp_segment_trusted(dbpool_coord *c, const char *db_path, const dbp_dbfile *db)
{
  struct stat st;
  return c->fd >= 0 && fstat(c->fd, &st) == 0 &&
         dbp_perms_owner_trusted(db_path, db, st.st_uid, st.st_gid);
}

bool dbp_lower_candidate_usable(dbpool_coord *c, const char *db_path, const dbp_dbfile *db)
{
  for (unsigned k = 0; k < c->cand; k++)
    if (candidate_usable(c->ns, db, db_path, k, false, NULL)) return true;
  return false;
}

/* We created a pool under candidate cand: a racing creator may have made one
** under a later name after its scan passed ours (ours was not linked yet).
** The earliest usable candidate is the pool: mark the later ones removed,
** so that their users move here. */
static void remove_later_candidates(const char *ns, const dbp_dbfile *db,
                                    const char *db_path, unsigned cand)
{
  for (unsigned k = cand + 1; k < DBP_CANDIDATES; k++) {
    dbpool_coord *later = NULL;
    if (!candidate_usable(ns, db, db_path, k, true, &later)) continue;
    dbp_mark_removed(later);
    dbp_segment_unmap(later);
    free(later);
  }
}

static int attach_by_path(const char *db_path, unsigned flags,
                          const int64_t *explicit, dbpool_coord **out)
{
  const char *ns;
  dbp_dbfile db;
  bool ro = flags & DBPOOL_OPEN_READONLY, created = false;
  int rc = dbp_namespace(&ns);
  if (rc == 0) rc = dbp_dbfile_stat(db_path, &db); /* GCOVR_EXCL_BR_LINE: open_common validated the namespace just before */
  if (rc == 0) rc = dbp_check_can_read(db_path);
  if (rc) return rc;
  if (!db.abs[0]) { /* the path is recorded resolved: name what is too long */
    char *resolved = realpath(db_path, NULL);
    rc = dbp_err(-ENAMETOOLONG, "dbpool: database path %s is longer than %d bytes",
                 resolved ? resolved : db_path, DBPOOL_PATH_MAX - 1);
    free(resolved);
    return rc;
  }
  char name[DBP_SEGMENT_NAME_MAX];
  for (int attempt = 0; attempt < ATTACH_ATTEMPTS; attempt++) {
    bool retry = false;
    int first_free = -1;
    guards gs = {0};
    for (unsigned cand = 0; cand < DBP_CANDIDATES && !retry; cand++) {
      dbp_segment_name(ns, &db.key, cand, name);
      rc = try_candidate(name, cand, db_path, &db, ro, out, first_free < 0 ? &gs : NULL);
      if (rc == CAND_USED) {
        guards_release(&gs);
        if (created && !ro) remove_later_candidates(ns, &db, db_path, cand);
        return 0;
      }
      if (rc < 0) {
        guards_release(&gs);
        return rc;
      }
      if (rc == CAND_RETRY) retry = true;
      if (rc == CAND_ABSENT && first_free < 0) first_free = (int)cand;
    }
    if (retry || first_free < 0 || ro || (flags & DBPOOL_OPEN_NOCREATE)) {
      guards_release(&gs);
      if (retry) continue;
      if (first_free < 0)
        return dbp_err(-EBUSY, "dbpool: every name the pool of %s may use is "
                       "held by a segment its users cannot use (removed, or owned "
                       "by a user who cannot read the database); root can collect "
                       "them: dbpoolctl gc", db.abs);
      dbp_segment_name(ns, &db.key, 0, name);
      return dbp_err(-ENOENT, "dbpool: no pool for %s (segment %s)", db.abs, name);
    }
    unsigned locked;
    if (!guards_lock(&gs, &locked)) { /* one was unlinked meanwhile: look again */
      guards_unlock(&gs, locked);
      guards_release(&gs);
      continue;
    }
    dbp_segment_name(ns, &db.key, (unsigned)first_free, name);
    rc = dbp_segment_create(name, ns, db.abs, &db, explicit);
    guards_unlock(&gs, locked);
    guards_release(&gs);
    if (rc && rc != -EEXIST) return rc;
    created = created || rc == 0;
  }
  return dbp_err(-EAGAIN, "dbpool: the pool of %s kept being removed while "
                 "attaching; try again", db_path);
}

/* By segment name (listing, dbpoolctl): the database is learned from the
** header and checked against the name's key. */
static int attach_by_name(const char *seg_name, unsigned flags, dbpool_coord **out)
{
  char name[DBP_SEGMENT_NAME_MAX], ns[33];
  dbp_key k;
  unsigned cand;
  bool ro = flags & DBPOOL_OPEN_READONLY;
  if (!seg_name || !dbp_parse_segment_name(seg_name, ns, &k, &cand)) /* GCOVR_EXCL_BR_LINE: seg_name is never NULL here (open_common passes a name); the parse failure is tested (naming_rules.c) */
    return dbp_err(-EINVAL, "dbpool: '%s' is not a pool segment name (expected "
                   "/dbpool.<dev>.<ino>.<birth>)", seg_name ? seg_name : ""); /* GCOVR_EXCL_BR_LINE: as above */
  snprintf(name, sizeof name, "/%s", seg_name[0] == '/' ? seg_name + 1 : seg_name); /* GCOVR_EXCL_BR_LINE: open_common already made it "/..." */
  struct stat st;
  const char *why = NULL;
  int fd = open_fd(name, ro, &st, &why);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return dbp_err(-ENOENT, "dbpool: no pool segment %s", name);
    if (e == EBADMSG)
      return dbp_err(-EBADMSG, "dbpool: pool segment %s failed validation: %s",
                     name, why);
    return dbp_err(-e, "dbpool: cannot open pool segment %s: %s", name, strerror(e));
  }
  dbp_header *h;
  int mrc = map_segment(fd, ro, name, &h);
  if (mrc) return mrc;
  int rc = validate_header(h, name, &k);
  dbpool_coord *c = rc == 0 ? new_attachment(fd, &st, h, name, &k, ro) : NULL;
  if (rc == 0 && !c) rc = dbp_err(-ENOMEM, "dbpool: out of memory");
  if (rc) {
    munmap(h, DBP_SEGMENT_SIZE);
    close(fd);
    return rc;
  }
  /* Steering follows the database while it is where the pool says; a pool
  ** whose database is gone is its segment owner's (or root's). */
  dbp_dbfile db;
  if (dbp_dbfile_stat_quiet(c->path, &db) == 0 && dbp_key_equal(&db.key, &k))
    c->steer_ok = dbp_can_write(c->path);
  else
    c->steer_ok = geteuid() == 0 || st.st_uid == geteuid();
  *out = c;
  return 0;
}

/* Attach to the pool of db_path, or (db_path NULL) to segment seg_name.
** explicit: settings for a pool created now (DBPOOL_SETTING_UNSET for
** none), or NULL. */
int dbp_segment_attach(const char *db_path, const char *seg_name,
                       unsigned flags, const int64_t *explicit,
                       dbpool_coord **out)
{
  return db_path ? attach_by_path(db_path, flags, explicit, out)
                 : attach_by_name(seg_name, flags, out);
}
