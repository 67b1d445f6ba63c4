/*
** sqlite_rc.h -- the one mapping from the coordinator's negative errno
** values to SQLite result codes, for the layers that speak SQLite: the
** in-process pool (pool/, sqlite3.h) and the extension (ext/, sqlite3ext.h).
** Include it after either header. Tested entry by entry in tests/pool/rc.c.
**
** Only errnos whose meaning is the same wherever they come from are mapped;
** the rest (EINVAL, ENOSPC, EBADMSG, ESTALE...) take the caller's fallback:
** SQLITE_CANTOPEN where a connection was being opened, SQLITE_ERROR
** elsewhere. The detailed message (dbp_errmsg) says what happened.
*/
#ifndef DBPOOL_SQLITE_RC_H
#define DBPOOL_SQLITE_RC_H

#include <errno.h>

static inline int dbp_sqlite_rc(int err, int fallback)
{
  switch (-err) {
  case 0: return SQLITE_OK;
  case EAGAIN:          /* no slot free, tried once */
  case ETIMEDOUT: return SQLITE_BUSY; /* no slot within the timeout */
  case EACCES:
  case EPERM: return SQLITE_PERM;
  case ENOMEM: return SQLITE_NOMEM;
  case EROFS: return SQLITE_READONLY;
  case ENOENT: return SQLITE_CANTOPEN;
  case EINTR: return SQLITE_INTERRUPT; /* a signal ended the wait */
  case ECANCELED: return SQLITE_ABORT; /* dbpool_holder_cancel */
  default: return fallback;
  }
}

#endif
