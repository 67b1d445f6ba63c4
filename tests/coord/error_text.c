/*
** error_text.c -- dbpool_strerror: every errno the API returns has its
** meaning in this library's terms (coordinator/errors.c); any other
** negative errno reads as the system's text; a positive value is no error
** code at all.
*/
#include "testutil.h"

TEST(every_api_errno_has_its_meaning)
{
  static const struct { int e; const char *text; } want[] = {
      {EAGAIN, "no slot free (tried once)"},
      {ETIMEDOUT, "timed out waiting for a slot"},
      {ENOENT, "no such database file or pool"},
      {EACCES, "permission denied"},
      {EPERM, "holder belongs to another process"},
      {EBADMSG, "pool segment failed validation (corrupt or foreign)"},
      {EINVAL, "invalid argument"},
      {ERANGE, "value out of range"},
      {ENOSPC, "pool has no free holder or process record"},
      {EBUSY, "pool is in use by live processes"},
      {EALREADY, "holder already holds or waits for a slot"},
      {EROFS, "pool is attached read-only"},
      {ESTALE, "pool was removed"},
      {ECANCELED, "acquire was cancelled"},
      {EINTR, "interrupted while waiting for a slot"},
      {ENOTRECOVERABLE, "pool lock is unrecoverable"},
      {ENOMEM, "out of memory"},
      {ENAMETOOLONG, "path too long"},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    CHECK_STR(dbpool_strerror(-want[i].e), want[i].text);
  CHECK_STR(dbpool_strerror(0), "success");
}

TEST(other_errnos_read_as_the_systems_text)
{
  CHECK_STR(dbpool_strerror(-EIO), strerror(EIO));
  CHECK_STR(dbpool_strerror(-EMFILE), strerror(EMFILE));
  CHECK_STR(dbpool_strerror(5), "unknown error");
  CHECK_STR(dbpool_strerror(EAGAIN), "unknown error"); /* errors are negative */
}

int main(void)
{
  tu_init("error_text");
  RUN(every_api_errno_has_its_meaning);
  RUN(other_errnos_read_as_the_systems_text);
  return tu_finish();
}
