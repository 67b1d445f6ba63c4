/*
** inherit_settings.c -- a pool made for a file that replaced another at
** the same path takes over the settings of the pool last used there
** (coordinator/create.c): the most recently used valid predecessor of the
** same namespace, whose owner may read the database; explicit values win.
** Whatever else lies in /dev/shm under a pool's name -- a directory, a
** short file, a dangling symlink, a copy with a bad magic, another path, a
** removed pool, one owned by a user who cannot read the database -- is
** never taken for a predecessor.
*/
#include <stddef.h>

#include "testutil.h"
#include "coordinator/layout.h"

#define SEG_SIZE ((size_t)DBP_SEGMENT_SIZE)

static void replace_file(const char *db)
{
  REQUIRE(unlink(db) == 0);
  int fd = open(db, O_CREAT | O_EXCL | O_RDWR, 0644);
  REQUIRE(fd >= 0);
  close(fd);
}

static int64_t setting(dbpool_coord *c, int s)
{
  int64_t v = -1;
  dbpool_coord_get(c, s, &v);
  return v;
}

/* A pool at db with these two settings, closed. */
static void pool_with(const char *db, int64_t max, int64_t starve, char *name, size_t cap)
{
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, max) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_WRITER_STARVATION_MS, starve) == 0);
  snprintf(name, cap, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
}

static char planted[16][300];
static int n_planted;

/* /dev/shm/dbpool.<ns>.1.2.<k>: a name no database has. */
static const char *plant_name(unsigned k)
{
  const char *ns = "";
  dbpool_coord_namespace(&ns);
  char *p = planted[n_planted++];
  snprintf(p, 300, "/dev/shm/dbpool.%s%s1.2.%x", ns, *ns ? "." : "", k);
  return p;
}

/* A copy of segment src (its name) at a planted name, patched by fix. */
static const char *plant_copy(const char *src, unsigned k, void (*fix)(dbp_header *h))
{
  char from[300];
  snprintf(from, sizeof from, "/dev/shm%s", src);
  int in = open(from, O_RDONLY);
  REQUIRE(in >= 0);
  unsigned char *b = malloc(SEG_SIZE);
  REQUIRE(b && pread(in, b, SEG_SIZE, 0) == (ssize_t)SEG_SIZE);
  close(in);
  fix((dbp_header *)b);
  const char *to = plant_name(k);
  int out = open(to, O_CREAT | O_EXCL | O_WRONLY, 0644);
  REQUIRE(out >= 0 && pwrite(out, b, SEG_SIZE, 0) == (ssize_t)SEG_SIZE);
  close(out);
  free(b);
  return to;
}

static void bad_magic(dbp_header *h) { h->magic ^= 1; }
static void other_path(dbp_header *h) { snprintf(h->path, sizeof h->path, "/elsewhere.db"); }
static void removed(dbp_header *h) { h->gate.half[1] |= G_REMOVED; }
static void newest(dbp_header *h) { atomic_store(&h->last_used_ns, INT64_MAX); }
static void oldest(dbp_header *h) { atomic_store(&h->last_used_ns, 1); }

TEST(a_replacing_file_takes_over_the_newest_valid_predecessors_settings)
{
  const char *db = tu_db("replaced.db");
  char a[200], b[200];
  pool_with(db, 5, 55, a, sizeof a);
  replace_file(db);
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0); /* inherits from a */
  CHECK(setting(c, DBPOOL_SETTING_MAX_CONNECTIONS) == 5);
  CHECK(setting(c, DBPOOL_SETTING_WRITER_STARVATION_MS) == 55);
  dbpool_coord_close(c);
  pool_with(db, 6, 66, b, sizeof b); /* the same pool: now 6, 66, used last */
  /* What is not a predecessor. */
  const char *dir = plant_name(0x10);
  REQUIRE(mkdir(dir, 0755) == 0);
  const char *small = plant_name(0x11);
  int fd = open(small, O_CREAT | O_WRONLY, 0644);
  REQUIRE(fd >= 0 && write(fd, "short", 5) == 5);
  close(fd);
  const char *link = plant_name(0x12);
  REQUIRE(symlink("/nonexistent", link) == 0);
  plant_copy(b, 0x13, bad_magic);
  plant_copy(b, 0x14, other_path);
  plant_copy(b, 0x15, removed);
  const char *foreign = plant_copy(b, 0x16, newest);
  REQUIRE(chown(foreign, 65533, 65533) == 0); /* a user who cannot read 0600 */
  REQUIRE(chmod(db, 0600) == 0);
  replace_file(db);
  REQUIRE(chmod(db, 0600) == 0);
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  CHECK(setting(c, DBPOOL_SETTING_MAX_CONNECTIONS) == 6); /* b's, the newest valid */
  CHECK(setting(c, DBPOOL_SETTING_WRITER_STARVATION_MS) == 66);
  dbpool_coord_close(c);
  /* A valid copy of a used last "in the future" is the newest; an explicit
  ** value still wins over it. */
  plant_copy(a, 0x17, newest);
  plant_copy(b, 0x18, oldest); /* (listed before or after: the newest wins) */
  replace_file(db);
  int64_t v[DBPOOL_SETTING_COUNT];
  for (int i = 0; i < DBPOOL_SETTING_COUNT; i++) v[i] = DBPOOL_SETTING_UNSET;
  v[DBPOOL_SETTING_MAX_CONNECTIONS] = 3;
  REQUIRE(dbpool_coord_open_with(db, v, &c) == 0);
  CHECK(setting(c, DBPOOL_SETTING_MAX_CONNECTIONS) == 3);
  CHECK(setting(c, DBPOOL_SETTING_WRITER_STARVATION_MS) == 55); /* a's */
  dbpool_coord_close(c);
  rmdir(dir);
  for (int i = 0; i < n_planted; i++) unlink(planted[i]);
}

int main(void)
{
  tu_init("inherit_settings");
  RUN(a_replacing_file_takes_over_the_newest_valid_predecessors_settings);
  return tu_finish();
}
