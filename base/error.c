/*
** error.c -- this thread's detailed message for the last failure (which
** path, which value, which limit). One buffer for the whole library: the
** coordinator's dbpool_last_error() and the pool's dbpool_errmsg() read it.
*/
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "base/base.h"

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

const char *dbp_errmsg(void) { return t_message; }

void dbp_clear_error(void) { t_message[0] = 0; }
