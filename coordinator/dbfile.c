/*
** dbfile.c -- the database file a pool belongs to: its identity and who
** may use it.
**
** Identity is (st_dev, st_ino, birth time). The birth time (statx
** STATX_BTIME: ext4, xfs, btrfs, tmpfs...) tells a new file from a deleted
** one whose inode number it reuses (ext4 reuses them at once). Where the file
** system keeps no birth time, birth is 0 and a pool outlives its file's
** deletion until it is collected (admin.c), which happens when the last
** process using a deleted file leaves.
**
** Access follows the database file, as SQLite's -wal and -shm files do:
** whoever can read the database may use its pool (every connection counts,
** read-only ones too); changing settings or removing the pool needs write
** permission on the database (or root).
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal.h"

bool dbp_key_equal(const dbp_key *a, const dbp_key *b)
{
  return a->dev == b->dev && a->ino == b->ino && a->birth == b->birth;
}

int dbp_file_id_from_statx(const struct statx *sx, dbp_file_id *id)
{
  const unsigned need = STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_UID | STATX_GID |
                        STATX_INO;
  id->dev = (uint64_t)makedev(sx->stx_dev_major, sx->stx_dev_minor);
  id->ino = sx->stx_ino;
  id->birth = (sx->stx_mask & STATX_BTIME)
                  ? (uint64_t)sx->stx_btime.tv_sec * 1000000000u + sx->stx_btime.tv_nsec
                  : 0;
  id->mode = sx->stx_mode;
  id->uid = sx->stx_uid;
  id->gid = sx->stx_gid;
  id->nlink = sx->stx_nlink;
  return (sx->stx_mask & need) == need ? 0 : -1;
}

/* Fill out from db_path without setting an error message: 0, or -errno
** (-EINVAL: not a regular file). */
int dbp_dbfile_stat_quiet(const char *db_path, dbp_dbfile *out)
{
  struct statx sx;
  if (statx(AT_FDCWD, db_path, AT_STATX_SYNC_AS_STAT,
            STATX_BASIC_STATS | STATX_BTIME, &sx) != 0)
    return -errno;
  dbp_file_id id;
  dbp_file_id_from_statx(&sx, &id);
  return dbp_dbfile_from_id(&id, out);
}

int dbp_dbfile_from_id(const dbp_file_id *id, dbp_dbfile *out)
{
  if (!S_ISREG(id->mode)) return -EINVAL;
  out->key.dev = id->dev;
  out->key.ino = id->ino;
  out->key.birth = id->birth;
  out->uid = id->uid;
  out->gid = id->gid;
  out->mode = id->mode & 07777;
  out->abs[0] = 0;
  return 0;
}

/* The database file's identity, owner and mode, and its absolute path
** (resolved: symlinks and relative paths reach the same pool). */
int dbp_dbfile_stat(const char *db_path, dbp_dbfile *out)
{
  int rc = dbp_dbfile_stat_quiet(db_path, out);
  if (rc == -ENOENT || rc == -ENOTDIR)
    return dbp_err(-ENOENT, "dbpool: database file %s does not exist", db_path);
  if (rc == -EINVAL)
    return dbp_err(-EINVAL, "dbpool: %s is not a regular file", db_path);
  if (rc)
    return dbp_err(rc, "dbpool: cannot stat database file %s: %s", db_path,
                   strerror(-rc));
  char *abs = realpath(db_path, NULL);
  if (!abs)
    return dbp_err(errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno,
                   "dbpool: cannot resolve the path of database file %s: %s", db_path,
                   strerror(errno));
  if (strlen(abs) < sizeof out->abs) memcpy(out->abs, abs, strlen(abs) + 1);
  free(abs);
  return 0;
}

int dbp_check_can_read(const char *db_path)
{
  if (faccessat(AT_FDCWD, db_path, R_OK, AT_EACCESS) == 0) return 0;
  int e = errno;
  if (e == EACCES || e == EPERM)
    return dbp_err(-EACCES, "dbpool: uid %u cannot read the database %s, so it "
                   "may not use its pool", (unsigned)geteuid(), db_path);
  return dbp_err(-e, "dbpool: cannot check access to the database %s: %s",
                 db_path, strerror(e));
}

bool dbp_can_write(const char *db_path)
{
  return geteuid() == 0 || faccessat(AT_FDCWD, db_path, W_OK, AT_EACCESS) == 0;
}
