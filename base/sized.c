/*
** sized.c -- the growable structs' rule, in one place: a caller's struct
** starts with its size, which may be smaller than the library's (a program
** built with older headers) or larger (newer headers, older library). The
** library refuses less than the first version, and reads and writes only
** what both know.
*/
#include <errno.h>
#include <string.h>

#include "base/base.h"

static uint32_t size_of(const void *s)
{
  uint32_t size;
  memcpy(&size, s, sizeof size);
  return size;
}

int dbp_sized_check(const void *s, size_t v1_size, const char *type, const char *init)
{
  uint32_t size = size_of(s);
  if (size < v1_size)
    return dbp_err(-EINVAL, "dbpool: %s.size is %u, smaller than its first "
                   "version's %zu: set it with %s", type, (unsigned)size, v1_size, init);
  return 0;
}

void dbp_sized_out(void *dst, const void *full, size_t full_size)
{
  size_t n = size_of(dst);
  if (n > full_size) n = full_size;
  memcpy(dst, full, n);
  uint32_t filled = (uint32_t)n;
  memcpy(dst, &filled, sizeof filled);
}

int dbp_elem_check(size_t elem_size, size_t v1_size, const char *type)
{
  if (elem_size < v1_size)
    return dbp_err(-EINVAL, "dbpool: %s elements of %zu bytes are smaller than "
                   "the first version's %zu: pass sizeof buf[0]", type, elem_size, v1_size);
  return 0;
}

void dbp_elem_put(void *buf, size_t i, size_t elem_size, const void *full, size_t full_size)
{
  char *e = (char *)buf + i * elem_size;
  size_t n = elem_size < full_size ? elem_size : full_size;
  memcpy(e, full, n);
  memset(e + n, 0, elem_size - n);
}
