/*
** errors.c -- negative errno values, their names, and a per-thread detailed
** message for the last failure (which path, which value, which limit).
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Room for the longest message: one naming a path of up to PATH_MAX bytes
** (a path too long to pool is named in full) and the limit after it. */
static __thread char t_message[PATH_MAX + 1024];

int dbp_err(int err, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t_message, sizeof t_message, fmt, ap);
  va_end(ap);
  return err;
}

void dbp_clear_error(void) { t_message[0] = 0; }

const char *dbpool_last_error(void) { return t_message; }

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
