/*
** create.c -- making pool segments and growing them.
**
** Create: an unnamed file in /dev/shm (O_TMPFILE) is sized, its first pages
**         reserved (fallocate: a page first touched when /dev/shm is full
**         would kill the process with SIGBUS), given its permissions
**         (perms.c) and initialised completely -- settings included, taken
**         over from the pool last used at the same path when the database
**         file was replaced -- then linked under its name with linkat(),
**         which fails if another process won the race. Nobody ever opens a
**         half-made segment, and a creator that dies leaves nothing.
** Grow:   the process and holder tables are reserved a page at a time, under
**         the pool lock, before their high-water marks pass into the page
**         (dbp_reserve_locked); a full /dev/shm is an error naming it.
** Which name a pool gets, and when one is created at all, is attach.c's.
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


int dbp_shm_full_error(int err, const char *what, const char *db_path)
{
  struct statvfs sv;
  unsigned long long free_kib = 0, size_kib = 0;
  if (statvfs(DBP_SHM_DIR, &sv) == 0) {
    free_kib = (unsigned long long)sv.f_bavail * sv.f_frsize / 1024;
    size_kib = (unsigned long long)sv.f_blocks * sv.f_frsize / 1024;
  }
  return dbp_err(err, "dbpool: " DBP_SHM_DIR " is full: cannot %s for the pool "
                 "of %s (%llu KiB free of %llu KiB)", what, db_path, free_kib,
                 size_kib);
}

static int reserve(int fd, size_t off, size_t len, const char *db_path)
{
  int rc;
  do rc = fallocate(fd, 0, (off_t)off, (off_t)len); while (rc != 0 && errno == EINTR);
  if (rc == 0 || errno == EOPNOTSUPP) return 0; /* not tmpfs: nothing to do */
  if (errno == ENOSPC) return dbp_shm_full_error(-ENOSPC, "reserve memory", db_path);
  return dbp_err(-errno, "dbpool: cannot reserve memory in " DBP_SHM_DIR
                 " for the pool of %s: %s", db_path, strerror(errno));
}

/* Only a registering process grows the tables: a read-write attachment
** (dbpool_holder_new refuses a read-only one), its segment open. */
int dbp_reserve_locked(dbpool_coord *c, size_t off, size_t len)
{
  return reserve(c->fd, off, len, c->path);
}

/* ---------------------------------------------------------------- create */

/* Settings a new pool starts with: explicit values, else those of the pool
** last used at the same path (the file was replaced: settings are the
** operator's intent for the path), else the environment, else defaults. */
typedef struct initial {
  int64_t v[DBPOOL_SETTING_COUNT];
} initial;

/* Map the header of a segment named name read-only, if it is a valid pool
** of another file recorded at abs, owned by someone who may read db. */
static bool predecessor(const char *name, const char *abs, const dbp_dbfile *db,
                        dbp_header *copy)
{
  char path[PATH_MAX];
  struct stat st;
  dbp_shm_path(name, path, sizeof path);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return false;
  bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
            (uint64_t)st.st_size == DBP_SEGMENT_SIZE &&
            dbp_perms_owner_trusted(abs, db, st.st_uid, st.st_gid);
  dbp_header *h = ok ? mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
  close(fd);
  if (h == MAP_FAILED) return false;
  memcpy(copy, h, sizeof *copy);
  munmap(h, sizeof *h);
  copy->path[sizeof copy->path - 1] = 0;
  return copy->magic == DBP_MAGIC && copy->layout_version == DBP_LAYOUT_VERSION &&
         copy->header_size == sizeof(dbp_header) && strcmp(copy->path, abs) == 0 &&
         !(copy->gate.half[1] & G_REMOVED);
}

static void inherit_settings(const char *ns, const dbp_dbfile *db, initial *init,
                             const bool *given)
{
  char want_ns[33];
  dbp_key k;
  unsigned cand;
  DIR *d = opendir(DBP_SHM_DIR);
  if (!d) return;
  dbp_header *best = malloc(2 * sizeof *best), *h = best ? best + 1 : NULL;
  bool found = false;
  struct dirent *e;
  while (best && (e = readdir(d))) {
    if (!dbp_parse_segment_name(e->d_name, want_ns, &k, &cand) ||
        strcmp(want_ns, ns) != 0 || dbp_key_equal(&k, &db->key))
      continue;
    if (!predecessor(e->d_name, db->abs, db, h)) continue;
    if (!found || h->last_used_ns > best->last_used_ns) {
      memcpy(best, h, sizeof *best);
      found = true;
    }
  }
  closedir(d);
  for (int s = 0; found && s < DBPOOL_SETTING_COUNT; s++)
    if (!given[s]) init->v[s] = dbp_setting_read(best, s);
  free(best);
}

static int initial_settings(const char *ns, const dbp_dbfile *db,
                            const int64_t *explicit, initial *init)
{
  bool given[DBPOOL_SETTING_COUNT];
  for (int s = 0; s < DBPOOL_SETTING_COUNT; s++) {
    given[s] = explicit && explicit[s] != DBPOOL_SETTING_UNSET;
    if (given[s]) init->v[s] = explicit[s];
  }
  initial inherited;
  for (int s = 0; s < DBPOOL_SETTING_COUNT; s++) inherited.v[s] = DBPOOL_SETTING_UNSET;
  inherit_settings(ns, db, &inherited, given);
  for (int s = 0; s < DBPOOL_SETTING_COUNT; s++) {
    if (given[s]) continue;
    if (inherited.v[s] != DBPOOL_SETTING_UNSET) {
      init->v[s] = inherited.v[s];
      continue;
    }
    int rc = dbp_setting_initial(s, &init->v[s]);
    if (rc) return rc;
  }
  return 0;
}

int dbp_segment_create(const char *name, const char *ns, const char *db_path,
                       const dbp_dbfile *db, const int64_t *explicit)
{
  initial init;
  int rc = initial_settings(ns, db, explicit, &init);
  if (rc) return rc;

  int fd = open(DBP_SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == ENOSPC) return dbp_shm_full_error(-ENOSPC, "create a segment", db_path);
    return dbp_err(-errno, "dbpool: cannot create a pool segment in "
                   DBP_SHM_DIR ": %s", strerror(errno));
  }
  dbp_header *h = MAP_FAILED;
  if (ftruncate(fd, (off_t)DBP_SEGMENT_SIZE) != 0) {
    rc = dbp_err(-errno, "dbpool: cannot size the pool segment for %s: %s",
                 db_path, strerror(errno));
    goto out;
  }
  if ((rc = reserve(fd, 0, DBP_PROCESSES_OFF, db_path)) != 0) goto out;
  if ((rc = dbp_perms_apply(fd, db_path, db, true)) != 0) goto out;
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
  h->key_dev = db->key.dev;
  h->key_ino = db->key.ino;
  h->key_birth = db->key.birth;
  h->records = DBP_RECORDS;
  h->processes = DBP_PROCESSES;
  h->mutex_size = sizeof(pthread_mutex_t);
  h->created_ns = dbp_real_ns();
  atomic_store(&h->last_used_ns, h->created_ns);
  memcpy(h->path, db->abs, strlen(db->abs) + 1);
  h->gate.half[0] = 0;
  h->gate.half[1] = g_with(0, G_REC_SHIFT, DBP_REC_NONE);
  for (int s = 0; s < DBPOOL_SETTING_COUNT; s++) dbp_setting_init(h, s, init.v[s]);
  atomic_store(&h->q_head, DBP_REC_NONE);
  atomic_store(&h->q_tail, DBP_REC_NONE);
  atomic_store(&h->free_head, DBP_REC_NONE);
  atomic_store(&h->next_ticket, 1);
  dbp_wq_init(h); /* writer.c */

  char proc_link[64], target[PATH_MAX];
  snprintf(proc_link, sizeof proc_link, "/proc/self/fd/%d", fd);
  dbp_shm_path(name, target, sizeof target);
  if (linkat(AT_FDCWD, proc_link, AT_FDCWD, target, AT_SYMLINK_FOLLOW) != 0 &&
      (errno == EEXIST ||
       linkat(fd, "", AT_FDCWD, target, AT_EMPTY_PATH) != 0)) {
    if (errno == EEXIST) rc = -EEXIST;
    else if (errno == ENOSPC) rc = dbp_shm_full_error(-ENOSPC, "publish a segment", db_path);
    else rc = dbp_err(-errno, "dbpool: cannot publish pool segment %s: %s",
                      target, strerror(errno));
    goto out;
  }
  rc = 0;
out:
  if (h != MAP_FAILED) munmap(h, DBP_SEGMENT_SIZE);
  close(fd);
  return rc;
}
