/*
** errors.c -- negative errno values and their meaning in this API; the
** per-thread detailed message itself is base/error.c's.
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *dbpool_last_error(void) { return dbp_errmsg(); }

/* The meaning each errno has in this library's API. */
#define DBP_ERRORS(X)                                                        \
  X(EAGAIN, "no slot free (tried once)")                                   \
  X(ETIMEDOUT, "timed out waiting for a slot")                             \
  X(ENOENT, "no such database file or pool")                               \
  X(EACCES, "permission denied")                                           \
  X(EPERM, "holder belongs to another process")                            \
  X(EBADMSG, "pool segment failed validation (corrupt or foreign)")        \
  X(EINVAL, "invalid argument")                                            \
  X(ERANGE, "value out of range")                                          \
  X(ENOSPC, "pool has no free holder or process record")                   \
  X(EBUSY, "pool is in use by live processes")                             \
  X(EALREADY, "holder already holds or waits for a slot")                  \
  X(EROFS, "pool is attached read-only")                                   \
  X(ESTALE, "pool was removed")                                            \
  X(ECANCELED, "acquire was cancelled")                                     \
  X(EINTR, "interrupted while waiting for a slot")                         \
  X(ENOTRECOVERABLE, "pool lock is unrecoverable")                         \
  X(ENOMEM, "out of memory")                                               \
  X(ENAMETOOLONG, "path too long")

const char *dbpool_strerror(int err)
{
  switch (-err) {
  case 0: return "success";
#define DBP_CASE(e, text) case e: return text;
    DBP_ERRORS(DBP_CASE)
#undef DBP_CASE
  default: break;
  }
  return err < 0 ? strerror(-err) : "unknown error";
}
