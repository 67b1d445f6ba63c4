/*
** segment.c -- naming, creating, validating and removing pool segments.
**
** Name:   /dbpool.<dev>.<ino> (hex), or /dbpool.<namespace>.<dev>.<ino> when
**         DBPOOL_NAMESPACE is set (test runs, separate deployments).
** Create: an unnamed file in /dev/shm (O_TMPFILE) is sized, given the
**         database's permission bits and initialised completely, then linked
**         under its name with linkat(), which fails if another process won
**         the race: no process can ever open a half-initialised segment, and
**         a creator that dies leaves nothing behind.
** Attach: open, check owner, mode and size, map, validate every header field
**         (magic, layout version, sizes, key, limits).
** Remove: under the lock, with no live process attached (or forced): set
**         REMOVED in the gate, wake waiters, unlink. A process that mapped
**         the segment just before sees REMOVED when it registers and starts
**         over, so a removal never races an opener into two pools.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "writer.h"

#define PREFIX "dbpool."

int dbp_namespace(const char **out)
{
  const char *ns = getenv(DBPOOL_ENV_NAMESPACE);
  *out = "";
  if (!ns || !*ns) return 0;
  size_t n = strlen(ns);
  bool ok = n <= 32;
  for (size_t i = 0; ok && i < n; i++) {
    char ch = ns[i];
    ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
  }
  if (!ok)
    return dbp_err(-EINVAL, "dbpool: %s='%s' is invalid: use 1 to 32 letters, "
                   "digits, '-' or '_'", DBPOOL_ENV_NAMESPACE, ns);
  *out = ns;
  return 0;
}

int dbpool_coord_namespace(const char **out)
{
  if (!out) return dbp_err(-EINVAL, "dbpool: namespace: NULL argument");
  return dbp_namespace(out);
}

static void name_of(const char *ns, uint64_t dev, uint64_t ino,
                    char out[DBP_SEGMENT_NAME_MAX])
{
  if (*ns)
    snprintf(out, DBP_SEGMENT_NAME_MAX, "/" PREFIX "%s.%" PRIx64 ".%" PRIx64,
             ns, dev, ino);
  else
    snprintf(out, DBP_SEGMENT_NAME_MAX, "/" PREFIX "%" PRIx64 ".%" PRIx64, dev,
             ino);
}

static bool parse_hex(const char *s, const char *end, uint64_t *v)
{
  if (s == end || end - s > 16) return false;
  *v = 0;
  for (; s < end; s++) {
    int d = (*s >= '0' && *s <= '9') ? *s - '0'
          : (*s >= 'a' && *s <= 'f') ? *s - 'a' + 10 : -1;
    if (d < 0) return false;
    *v = *v << 4 | (uint64_t)d;
  }
  return true;
}

/* Parse "[/]dbpool.[ns.]dev.ino". ns_out gets the namespace ("" default). */
static bool parse_name(const char *name, char ns_out[33], uint64_t *dev,
                       uint64_t *ino)
{
  if (*name == '/') name++;
  if (strncmp(name, PREFIX, strlen(PREFIX)) != 0) return false;
  const char *s = name + strlen(PREFIX);
  const char *dots[3];
  int nd = 0;
  for (const char *p = s; *p; p++)
    if (*p == '.') {
      if (nd == 3) return false;
      dots[nd++] = p;
    }
  const char *d0 = s;
  ns_out[0] = 0;
  if (nd == 2) {
    size_t n = (size_t)(dots[0] - s);
    if (n == 0 || n > 32) return false;
    memcpy(ns_out, s, n);
    ns_out[n] = 0;
    d0 = dots[0] + 1;
    dots[0] = dots[1];
  } else if (nd != 1) {
    return false;
  }
  return parse_hex(d0, dots[0], dev) &&
         parse_hex(dots[0] + 1, dots[0] + 1 + strlen(dots[0] + 1), ino);
}

static void shm_path(const char *name, char out[PATH_MAX])
{
  snprintf(out, PATH_MAX, DBP_SHM_DIR "/%s", name[0] == '/' ? name + 1 : name);
}

/* The database file's identity. */
static int stat_db(const char *db_path, struct stat *st)
{
  if (stat(db_path, st) != 0) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR)
      return dbp_err(-ENOENT, "dbpool: database file %s does not exist",
                     db_path);
    return dbp_err(-e, "dbpool: cannot stat database file %s: %s", db_path,
                   strerror(e));
  }
  if (!S_ISREG(st->st_mode))
    return dbp_err(-EINVAL, "dbpool: %s is not a regular file", db_path);
  return 0;
}

int dbp_segment_name_for(const char *db_path, char out[DBP_SEGMENT_NAME_MAX],
                         uint64_t *dev, uint64_t *ino)
{
  const char *ns;
  struct stat st;
  int rc = dbp_namespace(&ns);
  if (rc == 0) rc = stat_db(db_path, &st);
  if (rc) return rc;
  *dev = (uint64_t)st.st_dev;
  *ino = (uint64_t)st.st_ino;
  name_of(ns, *dev, *ino, out);
  return 0;
}

/* The segment's permission bits: the database's read/write bits, and
** always read/write for the segment's owner (a read-only database file still
** has connections to count). */
static mode_t expected_mode(const struct stat *db)
{
  return (db->st_mode & 0666) | 0600;
}

static int create_segment(const char *name, const char *abs_path,
                          const struct stat *db)
{
  int64_t max_conn, timeout;
  int rc = dbp_setting_initial(DBPOOL_SETTING_MAX_CONNECTIONS, &max_conn);
  if (rc == 0) rc = dbp_setting_initial(DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, &timeout);
  if (rc) return rc;
  if (strlen(abs_path) >= DBPOOL_PATH_MAX)
    return dbp_err(-ENAMETOOLONG, "dbpool: database path %s is longer than "
                   "%d bytes", abs_path, DBPOOL_PATH_MAX - 1);

  int fd = open(DBP_SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    return dbp_err(-errno, "dbpool: cannot create a pool segment in "
                   DBP_SHM_DIR ": %s", strerror(errno));
  dbp_header *h = MAP_FAILED;
  if (fchmod(fd, expected_mode(db)) != 0 ||
      ftruncate(fd, (off_t)DBP_SEGMENT_SIZE) != 0) {
    rc = dbp_err(-errno, "dbpool: cannot size the pool segment for %s: %s",
                 abs_path, strerror(errno));
    goto out;
  }
  /* Give group members of a group-shared database access (best effort:
  ** only works if we belong to the group, and only then is it needed). */
  if (fchown(fd, (uid_t)-1, db->st_gid) != 0) { /* not a member: fine */ }

  h = mmap(NULL, DBP_SEGMENT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (h == MAP_FAILED) {
    rc = dbp_err(-errno, "dbpool: cannot map a new pool segment: %s",
                 strerror(errno));
    goto out;
  }
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  rc = pthread_mutex_init(&h->lock, &ma);
  pthread_mutexattr_destroy(&ma);
  if (rc) {
    rc = dbp_err(-rc, "dbpool: cannot initialise the pool lock: %s", strerror(rc));
    goto out;
  }
  h->magic = DBP_MAGIC;
  h->layout_version = DBP_LAYOUT_VERSION;
  h->header_size = sizeof(dbp_header);
  h->segment_size = DBP_SEGMENT_SIZE;
  h->key_dev = (uint64_t)db->st_dev;
  h->key_ino = (uint64_t)db->st_ino;
  h->records = DBP_RECORDS;
  h->processes = DBP_PROCESSES;
  h->mutex_size = sizeof(pthread_mutex_t);
  h->created_ns = dbp_real_ns();
  strcpy(h->path, abs_path);
  uint64_t bits = g_with(0, G_MAX_SHIFT, (unsigned)max_conn);
  bits = g_with(bits, G_REC_SHIFT, DBP_REC_NONE);
  h->gate.half[0] = 0;
  h->gate.half[1] = bits;
  atomic_store(&h->acquire_timeout_ms, (int32_t)timeout);
  atomic_store(&h->q_head, DBP_REC_NONE);
  atomic_store(&h->q_tail, DBP_REC_NONE);
  atomic_store(&h->free_head, DBP_REC_NONE);
  atomic_store(&h->next_ticket, 1);
  dbp_wq_init(h); /* writer.c */

  char proc_link[64], target[PATH_MAX];
  snprintf(proc_link, sizeof proc_link, "/proc/self/fd/%d", fd);
  shm_path(name, target);
  if (linkat(AT_FDCWD, proc_link, AT_FDCWD, target, AT_SYMLINK_FOLLOW) != 0 &&
      (errno == EEXIST ||
       linkat(fd, "", AT_FDCWD, target, AT_EMPTY_PATH) != 0)) {
    rc = errno == EEXIST ? -EEXIST
                         : dbp_err(-errno, "dbpool: cannot publish pool "
                                   "segment %s: %s", target, strerror(errno));
    goto out;
  }
  rc = 0;
out:
  if (h != MAP_FAILED) munmap(h, DBP_SEGMENT_SIZE);
  close(fd);
  return rc;
}

static int check_owner_mode(int fd, const struct stat *st, const char *name,
                            const char *db_path, const struct stat *db,
                            bool readonly)
{
  uid_t me = geteuid();
  bool owner_ok = st->st_uid == db->st_uid || st->st_uid == me ||
                  st->st_uid == 0 ||
                  (st->st_gid == db->st_gid && (db->st_mode & 020));
  if (!owner_ok)
    return dbp_err(-EACCES,
                   "dbpool: pool segment %s is owned by uid %u, which neither "
                   "owns the database %s (uid %u) nor shares its group; "
                   "refusing to attach", name, (unsigned)st->st_uid, db_path,
                   (unsigned)db->st_uid);
  mode_t want = expected_mode(db), have = st->st_mode & 07777;
  if (have == want) return 0;
  /* The database's mode changed since the pool was made: its owner follows. */
  if (st->st_uid == me && !readonly && fchmod(fd, want) == 0) return 0;
  return dbp_err(-EACCES,
                 "dbpool: pool segment %s has mode %04o but the database %s "
                 "has %04o; refusing to attach (remove the pool to recreate "
                 "it)", name, (unsigned)have, db_path,
                 (unsigned)(db->st_mode & 07777));
}

static int validate_header(const dbp_header *h, const char *name, uint64_t dev,
                           uint64_t ino)
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
  else if (h->key_dev != dev || h->key_ino != ino)
    what = "belongs to another database file";
  else if (g_max(g.bits) < 1 || g_max(g.bits) > DBPOOL_MAX_CONNECTIONS_LIMIT)
    what = "max_connections out of range";
  else if (!memchr(h->path, 0, sizeof h->path)) what = "path not terminated";
  if (!what) return 0;
  return dbp_err(-EBADMSG, "dbpool: pool segment %s failed validation: %s",
                 name, what);
}

/* Map the segment open on fd; check it is the one for (dev, ino). */
static int map_segment(int fd, const char *name, uint64_t dev, uint64_t ino,
                       const char *db_path, const struct stat *db,
                       unsigned flags, dbp_header **out)
{
  struct stat st;
  bool ro = flags & DBPOOL_OPEN_READONLY;
  if (fstat(fd, &st) != 0)
    return dbp_err(-errno, "dbpool: cannot stat pool segment %s: %s", name,
                   strerror(errno));
  if (db) {
    int rc = check_owner_mode(fd, &st, name, db_path, db, ro);
    if (rc) return rc;
  } else if (!ro && st.st_uid != geteuid() && geteuid() != 0) {
    return dbp_err(-EACCES, "dbpool: the database of pool segment %s is gone; "
                   "only its owner (uid %u) may change it", name,
                   (unsigned)st.st_uid);
  }
  void *m = mmap(NULL, DBP_SEGMENT_SIZE, ro ? PROT_READ : PROT_READ | PROT_WRITE,
                 MAP_SHARED, fd, 0);
  if (m == MAP_FAILED)
    return dbp_err(-errno, "dbpool: cannot map pool segment %s: %s", name,
                   strerror(errno));
  int rc = validate_header(m, name, dev, ino);
  if (rc) {
    munmap(m, DBP_SEGMENT_SIZE);
    return rc;
  }
  *out = m;
  return 0;
}

/* Does name still refer to the segment file (dev, ino)? */
static bool name_is(const char *name, uint64_t dev, uint64_t ino)
{
  char path[PATH_MAX];
  struct stat st;
  shm_path(name, path);
  return stat(path, &st) == 0 && (uint64_t)st.st_ino == ino && (uint64_t)st.st_dev == dev;
}

/* Unlink name if it still refers to c's segment. Only ever under c's lock:
** nobody else may unlink or replace the name meanwhile (linkat cannot
** replace an existing name, and every unlink takes the lock of the segment
** it unlinks), so the check and the unlink cannot be split by another
** pool's creation. */
static void unlink_own_name_locked(dbpool_coord *c)
{
  char path[PATH_MAX];
  shm_path(c->name, path);
  if (name_is(c->name, c->seg_dev, c->seg_ino)) unlink(path);
}

/* Open a segment by name: never blocks (a FIFO planted under the name
** would), and refuses anything but a regular file of the right size before
** anything maps it (a short file would fault on access). Returns the fd, or
** -1 with errno set (EBADMSG: not a segment). */
static int open_fd(const char *name, bool ro, const char **why)
{
  char path[PATH_MAX];
  struct stat st;
  shm_path(name, path);
  int fd;
  do fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return -1;
  *why = NULL;
  if (fstat(fd, &st) != 0) *why = "cannot stat it";
  else if (!S_ISREG(st.st_mode)) *why = "not a regular file";
  else if ((uint64_t)st.st_size != DBP_SEGMENT_SIZE) *why = "wrong size";
  if (*why) {
    close(fd);
    errno = EBADMSG;
    return -1;
  }
  return fd;
}

/* Attach to the pool of db_path, or (db_path NULL) to segment seg_name. */
int dbp_segment_attach(const char *db_path, const char *seg_name,
                       unsigned flags, dbpool_coord **out)
{
  char name[DBP_SEGMENT_NAME_MAX], abs[PATH_MAX];
  char ns_buf[33];
  uint64_t dev, ino;
  struct stat dbst, *db = NULL;
  bool ro = flags & DBPOOL_OPEN_READONLY;
  int rc;

  if (db_path) {
    rc = dbp_segment_name_for(db_path, name, &dev, &ino);
    if (rc) return rc;
    stat(db_path, &dbst);
    db = &dbst;
    if (!realpath(db_path, abs)) snprintf(abs, sizeof abs, "%s", db_path);
  } else {
    if (!seg_name || !parse_name(seg_name, ns_buf, &dev, &ino))
      return dbp_err(-EINVAL, "dbpool: '%s' is not a pool segment name "
                     "(expected /dbpool.<dev>.<ino>)", seg_name ? seg_name : "");
    snprintf(name, sizeof name, "/%s", seg_name[0] == '/' ? seg_name + 1 : seg_name);
    abs[0] = 0;
  }

  for (int attempt = 0; attempt < 16; attempt++) {
    const char *why = NULL;
    int fd = open_fd(name, ro, &why);
    if (fd < 0) {
      int e = errno;
      if (e == EBADMSG)
        return dbp_err(-EBADMSG, "dbpool: pool segment %s failed validation: %s",
                       name, why);
      if (e != ENOENT)
        return dbp_err(-e, "dbpool: cannot open pool segment %s%s%s: %s", name,
                       db ? " of " : "", db ? abs : "", strerror(e));
      if (!db || ro || (flags & DBPOOL_OPEN_NOCREATE))
        return dbp_err(-ENOENT, "dbpool: no pool for %s (segment %s)",
                       db ? abs : name, name);
      rc = create_segment(name, abs, db);
      if (rc && rc != -EEXIST) return rc;
      continue; /* attach to what we (or the winner) published */
    }
    if (!db) {
      /* By name: learn the database from the header, check against it. */
      dbp_header *peek = mmap(NULL, sizeof(dbp_header), PROT_READ, MAP_SHARED, fd, 0);
      if (peek != MAP_FAILED) {
        char stored[DBPOOL_PATH_MAX];
        memcpy(stored, peek->path, sizeof stored);
        stored[sizeof stored - 1] = 0;
        munmap(peek, sizeof(dbp_header));
        if (stat(stored, &dbst) == 0 && (uint64_t)dbst.st_dev == dev &&
            (uint64_t)dbst.st_ino == ino) {
          db = &dbst;
          snprintf(abs, sizeof abs, "%s", stored);
        }
      }
    }
    dbp_header *h = NULL;
    rc = map_segment(fd, name, dev, ino, db ? abs : NULL, db, flags, &h);
    if (rc) {
      close(fd);
      return rc;
    }
    struct stat seg_st;
    if (fstat(fd, &seg_st) != 0) memset(&seg_st, 0, sizeof seg_st);
    close(fd);
    if (dbp_gate_snapshot(h).bits & G_REMOVED) {
      /* Removed under us, or its remover died before unlinking: take the
      ** name away, under that segment's lock, and start over. */
      if (!ro) {
        dbpool_coord stale = {.hdr = h, .map_size = DBP_SEGMENT_SIZE,
                              .procs = (dbp_process *)((char *)h + DBP_PROCESSES_OFF),
                              .recs = (dbp_record *)((char *)h + DBP_RECORDS_OFF),
                              .seg_dev = (uint64_t)seg_st.st_dev,
                              .seg_ino = (uint64_t)seg_st.st_ino, .proc_idx = -1};
        snprintf(stale.name, sizeof stale.name, "%s", name);
        if (dbp_lock(&stale, dbp_mono_ns() + 1000000000) == 0) {
          unlink_own_name_locked(&stale);
          dbp_unlock(&stale);
        }
      }
      munmap(h, DBP_SEGMENT_SIZE);
      if (!db_path) return dbp_err(-ENOENT, "dbpool: pool %s was removed", name);
      continue;
    }
    dbpool_coord *c = calloc(1, sizeof *c);
    if (!c) {
      munmap(h, DBP_SEGMENT_SIZE);
      return dbp_err(-ENOMEM, "dbpool: out of memory");
    }
    c->hdr = h;
    c->procs = (dbp_process *)((char *)h + DBP_PROCESSES_OFF);
    c->recs = (dbp_record *)((char *)h + DBP_RECORDS_OFF);
    c->map_size = DBP_SEGMENT_SIZE;
    c->readonly = ro;
    c->dev = dev;
    c->ino = ino;
    c->seg_dev = (uint64_t)seg_st.st_dev;
    c->seg_ino = (uint64_t)seg_st.st_ino;
    c->proc_idx = -1;
    c->fork_gen = dbp_fork_gen();
    snprintf(c->name, sizeof c->name, "%s", name);
    memcpy(c->path, h->path, sizeof c->path);
    c->path[sizeof c->path - 1] = 0;
    if (db && !ro && abs[0] && strcmp(c->path, abs) != 0) {
      /* Keep the recorded path true after a rename of the database. */
      struct stat cur;
      if (stat(c->path, &cur) != 0 || (uint64_t)cur.st_ino != ino ||
          (uint64_t)cur.st_dev != dev) {
        if (dbp_lock(c, -1) == 0) {
          snprintf(h->path, sizeof h->path, "%s", abs);
          dbp_unlock(c);
        }
        snprintf(c->path, sizeof c->path, "%s", abs);
      }
    }
    *out = c;
    return 0;
  }
  return dbp_err(-EAGAIN, "dbpool: pool %s kept being removed while "
                 "attaching; try again", name);
}

/* Is the segment we mapped still the one under its name? (Someone may have
** deleted the file by hand, and a new pool taken the name.) */
bool dbp_segment_still_linked(const dbpool_coord *c)
{
  char path[PATH_MAX];
  struct stat st;
  shm_path(c->name, path);
  return stat(path, &st) == 0 && (uint64_t)st.st_ino == c->seg_ino &&
         (uint64_t)st.st_dev == c->seg_dev;
}

void dbp_segment_unmap(dbpool_coord *c)
{
  if (c->hdr) munmap(c->hdr, c->map_size);
  c->hdr = NULL;
}

/* Under the lock: unlink and mark removed, waking every waiter. */
static void remove_locked(dbpool_coord *c)
{
  dbp_gate_set_flags(c, G_REMOVED | G_SLOW, 0);
  uint32_t hwm = dbp_record_hwm(c->hdr);
  for (uint32_t i = 0; i < hwm; i++) {
    dbp_record *r = &c->recs[i];
    if (REC_STATE(atomic_load(&r->word)) != REC_WAITING) continue;
    atomic_fetch_add(&r->wake, 1);
    dbp_futex_wake(&r->wake, INT_MAX);
  }
  unlink_own_name_locked(c);
}

static int remove_segment(dbpool_coord *c, bool force, bool only_if_orphan)
{
  dbp_reap(c);
  int rc = dbp_lock(c, -1);
  if (rc) return rc;
  int pids[8], np = 0, live = 0;
  uint32_t phwm = dbp_process_hwm(c->hdr);
  for (uint32_t p = 0; p < phwm; p++) {
    dbp_process *pr = &c->procs[p];
    if (atomic_load(&pr->state) != PROC_LIVE) continue;
    if (dbp_process_dead(atomic_load(&pr->pid), atomic_load(&pr->ident_kind),
                         atomic_load(&pr->ident)))
      continue;
    if (np < 8) pids[np++] = atomic_load(&pr->pid);
    live++;
  }
  if (live > 0 && !force) {
    dbp_unlock(c);
    if (only_if_orphan) return -EBUSY;
    char list[128] = "";
    size_t off = 0;
    for (int i = 0; i < np && off < sizeof list; i++)
      off += (size_t)snprintf(list + off, sizeof list - off, "%s%d",
                              i ? ", " : "", pids[i]);
    return dbp_err(-EBUSY, "dbpool: pool of %s is in use by %d live "
                   "process%s (pid %s%s)",
                   c->path, live, live == 1 ? "" : "es", list,
                   live > np ? ", ..." : "");
  }
  remove_locked(c);
  dbp_unlock(c);
  return 0;
}

/* Forced removal of something under a pool's name that we cannot attach
** to (corrupt, foreign, wrong mode): unlink the name itself, if the file
** system lets us (/dev/shm is sticky: its owner or root). */
static int unlink_unattachable(const char *db_path, const char *segment_name)
{
  char name[DBP_SEGMENT_NAME_MAX], path[PATH_MAX], ns[33];
  uint64_t dev, ino;
  if (db_path) {
    if (dbp_segment_name_for(db_path, name, &dev, &ino) != 0) return -1;
  } else if (!segment_name || !parse_name(segment_name, ns, &dev, &ino)) {
    return -1;
  } else {
    snprintf(name, sizeof name, "/%s", segment_name[0] == '/' ? segment_name + 1 : segment_name);
  }
  shm_path(name, path);
  if (unlink(path) != 0)
    return dbp_err(-errno, "dbpool: cannot remove %s: %s", path, strerror(errno));
  return 0;
}

int dbpool_coord_remove(const char *db_path, const char *segment_name, int force)
{
  dbpool_coord *c = NULL;
  dbp_clear_error();
  int rc = dbp_segment_attach(db_path, db_path ? NULL : segment_name,
                              DBPOOL_OPEN_NOCREATE, &c);
  if (force && (rc == -EBADMSG || rc == -EACCES))
    return unlink_unattachable(db_path, segment_name);
  if (rc) return rc;
  rc = remove_segment(c, force != 0, false);
  dbp_segment_unmap(c);
  free(c);
  return rc;
}

/* Remove a pool whose database file is gone, if no live process uses it. */
static void collect_if_orphan(const char *name)
{
  dbpool_coord *c = NULL;
  if (dbp_segment_attach(NULL, name, DBPOOL_OPEN_NOCREATE, &c) != 0) return;
  struct stat st;
  bool gone = stat(c->path, &st) != 0 || (uint64_t)st.st_dev != c->dev ||
              (uint64_t)st.st_ino != c->ino;
  if (gone) remove_segment(c, false, true);
  dbp_segment_unmap(c);
  free(c);
}

typedef struct { char **names; size_t n, cap; } name_list;

static int collect_names(name_list *out)
{
  const char *ns;
  int rc = dbp_namespace(&ns);
  if (rc) return rc;
  DIR *d = opendir(DBP_SHM_DIR);
  if (!d) return dbp_err(-errno, "dbpool: cannot list " DBP_SHM_DIR ": %s",
                         strerror(errno));
  struct dirent *e;
  while ((e = readdir(d))) {
    char ens[33];
    uint64_t dev, ino;
    if (!parse_name(e->d_name, ens, &dev, &ino) || strcmp(ens, ns) != 0) continue;
    if (out->n == out->cap) {
      size_t cap = out->cap ? out->cap * 2 : 16;
      char **p = realloc(out->names, cap * sizeof *p);
      if (!p) break;
      out->names = p;
      out->cap = cap;
    }
    size_t len = strlen(e->d_name) + 2;
    char *s = malloc(len);
    if (!s) break;
    snprintf(s, len, "/%s", e->d_name);
    out->names[out->n++] = s;
  }
  closedir(d);
  return 0;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int dbpool_coord_list(dbpool_coord_list_cb cb, void *arg)
{
  if (!cb) return dbp_err(-EINVAL, "dbpool: list: callback is NULL");
  name_list l = {0};
  int rc = collect_names(&l);
  if (rc) return rc;
  if (l.n) qsort(l.names, l.n, sizeof *l.names, cmp_str);
  char path[PATH_MAX];
  for (size_t i = 0; i < l.n && rc == 0; i++) {
    collect_if_orphan(l.names[i]);
    shm_path(l.names[i], path);
    if (access(path, F_OK) == 0) rc = cb(l.names[i], arg);
  }
  for (size_t i = 0; i < l.n; i++) free(l.names[i]);
  free(l.names);
  return rc;
}
