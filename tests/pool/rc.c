/*
** rc.c -- the one errno -> SQLite result code mapping (base/sqlite_rc.h)
** that the pool and the extension both use, entry by entry: what a caller
** of dbpool_open/dbpool_acquire or of the extension gets for each failure
** of the coordinator. ENOMEM is SQLITE_NOMEM everywhere (one of the four
** mappings it replaces turned every stats failure into SQLITE_CORRUPT).
*/
#include "poolutil.h"
#include "base/sqlite_rc.h"

TEST(each_errno_has_one_result_code)
{
  static const struct { int err, rc; } table[] = {
    {0, SQLITE_OK},
    {-EAGAIN, SQLITE_BUSY},       {-ETIMEDOUT, SQLITE_BUSY},
    {-EACCES, SQLITE_PERM},       {-EPERM, SQLITE_PERM},
    {-ENOMEM, SQLITE_NOMEM},      {-EROFS, SQLITE_READONLY},
    {-ENOENT, SQLITE_CANTOPEN},   {-EINTR, SQLITE_INTERRUPT},
    {-ECANCELED, SQLITE_ABORT},
  };
  for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
    CHECK_RC(dbp_sqlite_rc(table[i].err, SQLITE_ERROR), table[i].rc);
    CHECK_RC(dbp_sqlite_rc(table[i].err, SQLITE_CANTOPEN), table[i].rc);
  }
}

TEST(other_errnos_take_the_callers_fallback)
{
  static const int others[] = {-EINVAL, -ENOSPC, -EBADMSG, -ESTALE, -EALREADY,
                               -EBUSY, -ERANGE, -ENOTRECOVERABLE, -EFAULT};
  for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
    CHECK_RC(dbp_sqlite_rc(others[i], SQLITE_ERROR), SQLITE_ERROR);
    CHECK_RC(dbp_sqlite_rc(others[i], SQLITE_CANTOPEN), SQLITE_CANTOPEN);
  }
}

int main(void)
{
  tu_init("pool-rc");
  RUN(each_errno_has_one_result_code);
  RUN(other_errnos_take_the_callers_fallback);
  return tu_finish();
}
