/*
** naming_rules.c -- which pool segment names and namespaces are accepted
** (coordinator/naming.c):
**
**   /dbpool[.<namespace>].<dev>.<ino>.<birth>[~<k>]
**
** The namespace is 1 to 32 letters, digits, '-' or '_'; dev, ino and birth
** are 1 to 16 lower-case hex digits; k is a candidate 1..7. Anything else is
** not a pool segment name: dbpool_coord_open_segment refuses it with -EINVAL
** (and never looks in /dev/shm for it), while a well-formed name that no
** segment has is -ENOENT. DBPOOL_NAMESPACE with a character outside the set,
** or longer than 32, makes opens fail with -EINVAL naming the variable.
*/
#include "testutil.h"
#include "coordinator/internal.h"

/* Every character class boundary ns_char_ok and parse_hex look at. */
static const char *const bad_ns_chars = "!./:@[^`{~ ";

TEST(malformed_segment_names_are_refused_as_names)
{
  static const char *const bad[] = {
      "",                       /* no prefix */
      "/",                      /* no prefix */
      "/dbpoo.1.2.3",           /* prefix misspelt */
      "/dbpool.",               /* nothing after the prefix */
      "/dbpool.1.2",            /* two parts */
      "/dbpool.1",              /* one part */
      "/dbpool.a.b.1.2.3",      /* five parts */
      "/dbpool.a.1.2.3.4",      /* five parts, all hex */
      "/dbpool..1.2.3",         /* empty namespace */
      "/dbpool.abcdefghijklmnopqrstuvwxyz0123456.1.2.3", /* namespace of 33 */
      "/dbpool.ns!.1.2.3",      /* namespace character */
      "/dbpool.1..3",           /* empty ino */
      "/dbpool..2.3",           /* empty dev, no namespace */
      "/dbpool.1.2.",           /* empty birth */
      "/dbpool.11111111111111111.2.3", /* dev of 17 digits */
      "/dbpool.1.2.3G",         /* not hex */
      "/dbpool.1.2.3A",         /* hex, but upper case */
      "/dbpool.1.g.3",          /* ino not hex */
      "/dbpool.1.2.+3",         /* a sign */
      "/dbpool.1.2.3~",         /* candidate missing */
      "/dbpool.1.2.3~0",        /* candidate 0 has no suffix */
      "/dbpool.1.2.3~8",        /* past the last candidate */
      "/dbpool.1.2.3~/",        /* not a digit */
      "/dbpool.1.2.3~12",       /* two digits */
      "/dbpool.1.2~1.3",        /* suffix not at the end */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    dbpool_coord *c = (dbpool_coord *)1;
    CHECK_RC(dbpool_coord_open_segment(bad[i], DBPOOL_OPEN_READONLY, &c), -EINVAL);
    CHECK(c == NULL);
    if (!strstr(dbpool_last_error(), "is not a pool segment name"))
      fprintf(stderr, "  for '%s': %s\n", bad[i], dbpool_last_error());
    CHECK(strstr(dbpool_last_error(), "is not a pool segment name") != NULL);
  }
  /* A namespace with each character outside the set, at either end. */
  for (const char *p = bad_ns_chars; *p; p++) {
    char name[64];
    dbpool_coord *c;
    snprintf(name, sizeof name, "/dbpool.a%cZ.1.2.3", *p);
    CHECK_RC(dbpool_coord_open_segment(name, 0, &c), -EINVAL);
    snprintf(name, sizeof name, "/dbpool.%c.1.2.3", *p);
    CHECK_RC(dbpool_coord_open_segment(name, 0, &c), -EINVAL);
  }
  CHECK_RC(dbpool_coord_open_segment(NULL, 0, NULL), -EINVAL);
}

TEST(well_formed_names_without_a_segment_are_absent)
{
  static const char *const good[] = {
      "/dbpool.1.2.3",
      "dbpool.1.2.3", /* the leading slash is optional */
      "/dbpool.ffffffffffffffff.0.abcdef0123456789",
      "/dbpool.Az09-_.1.2.3~1",
      "/dbpool.abcdefghijklmnopqrstuvwxyz012345.1.2.3~7", /* namespace of 32 */
  };
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    dbpool_coord *c = (dbpool_coord *)1;
    CHECK_RC(dbpool_coord_open_segment(good[i], DBPOOL_OPEN_READONLY, &c), -ENOENT);
    CHECK(c == NULL);
    CHECK(strstr(dbpool_last_error(), "no pool segment /dbpool.") != NULL);
  }
}

TEST(parsed_names_give_namespace_key_and_candidate)
{
  char ns[33];
  dbp_key k;
  unsigned cand = 99;
  CHECK(dbp_parse_segment_name("/dbpool.my-ns_2.fd01.2a.0~3", ns, &k, &cand));
  CHECK_STR(ns, "my-ns_2");
  CHECK(k.dev == 0xfd01 && k.ino == 0x2a && k.birth == 0 && cand == 3);
  CHECK(dbp_parse_segment_name("dbpool.10.20.30", ns, &k, &cand));
  CHECK_STR(ns, "");
  CHECK(k.dev == 0x10 && k.ino == 0x20 && k.birth == 0x30 && cand == 0);

  /* And back: the name made from a key parses to that key. */
  char name[DBP_SEGMENT_NAME_MAX];
  dbp_key want = {.dev = 0x803, .ino = 0xffffffffffffffffull, .birth = 0x1234};
  dbp_segment_name("zz", &want, 9, name); /* candidates wrap at 8 */
  CHECK_STR(name, "/dbpool.zz.803.ffffffffffffffff.1234~1");
  CHECK(dbp_parse_segment_name(name, ns, &k, &cand));
  CHECK(dbp_key_equal(&k, &want) && cand == 1);
  CHECK_STR(ns, "zz");
  dbp_segment_name("", &want, 0, name);
  CHECK_STR(name, "/dbpool.803.ffffffffffffffff.1234");

  char path[64];
  dbp_shm_path("/dbpool.1.2.3", path, sizeof path);
  CHECK_STR(path, "/dev/shm/dbpool.1.2.3");
  dbp_shm_path("dbpool.1.2.3", path, sizeof path);
  CHECK_STR(path, "/dev/shm/dbpool.1.2.3");
}

/* With DBPOOL_NAMESPACE set to value: opening db fails with -EINVAL naming
** the variable, and no segment is made. */
static void namespace_refused(const char *value, const char *db)
{
  char saved[64];
  snprintf(saved, sizeof saved, "%s", getenv(DBPOOL_ENV_NAMESPACE));
  setenv(DBPOOL_ENV_NAMESPACE, value, 1);
  dbpool_coord *c = NULL;
  const char *ns = "unchanged";
  CHECK_RC(dbpool_coord_namespace(&ns), -EINVAL);
  CHECK_STR(ns, "");
  CHECK_RC(dbpool_coord_open(db, 0, &c), -EINVAL);
  CHECK(c == NULL);
  CHECK(strstr(dbpool_last_error(), "DBPOOL_NAMESPACE='") != NULL);
  CHECK(strstr(dbpool_last_error(), "is invalid: use 1 to 32 letters") != NULL);
  setenv(DBPOOL_ENV_NAMESPACE, saved, 1);
}

TEST(invalid_namespaces_are_refused)
{
  const char *db = tu_db("ns.db");
  int before = tu_count_segments();
  for (const char *p = bad_ns_chars; *p; p++) {
    char value[8];
    snprintf(value, sizeof value, "a%c", *p);
    namespace_refused(value, db);
  }
  namespace_refused("abcdefghijklmnopqrstuvwxyz0123456", db); /* 33 */
  CHECK(tu_count_segments() == before);

  /* Every accepted character, 32 of them, is a namespace. */
  char saved[64];
  snprintf(saved, sizeof saved, "%s", getenv(DBPOOL_ENV_NAMESPACE));
  setenv(DBPOOL_ENV_NAMESPACE, "azAZ09-_bcdefghijklmnopqrstuvwxy", 1);
  const char *ns = NULL;
  CHECK_RC(dbpool_coord_namespace(&ns), 0);
  CHECK_STR(ns, "azAZ09-_bcdefghijklmnopqrstuvwxy");
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK(strncmp(dbpool_coord_segment_name(c), "/dbpool.azAZ09-_bcdefghijklmnopqrstuvwxy.", 41) == 0);
  char seg[DBP_SEGMENT_NAME_MAX];
  snprintf(seg, sizeof seg, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
  CHECK_RC(dbpool_coord_remove(NULL, seg, 1), 0);
  setenv(DBPOOL_ENV_NAMESPACE, "", 1); /* empty: the default namespace */
  CHECK_RC(dbpool_coord_namespace(&ns), 0);
  CHECK_STR(ns, "");
  unsetenv(DBPOOL_ENV_NAMESPACE); /* unset: the default namespace too */
  ns = NULL;
  CHECK_RC(dbpool_coord_namespace(&ns), 0);
  CHECK_STR(ns, "");
  setenv(DBPOOL_ENV_NAMESPACE, saved, 1);
  CHECK_RC(dbpool_coord_namespace(NULL), -EINVAL);
}

int main(void)
{
  tu_init("naming");
  RUN(malformed_segment_names_are_refused_as_names);
  RUN(well_formed_names_without_a_segment_are_absent);
  RUN(parsed_names_give_namespace_key_and_candidate);
  RUN(invalid_namespaces_are_refused);
  return tu_finish();
}
