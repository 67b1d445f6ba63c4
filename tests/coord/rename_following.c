/*
** rename_following.c -- the database path a pool records follows the file
** (attach.c, dbp_follow_rename): opened under another name, the pool
** records that name when the recorded one no longer names the file --
** because nothing is there, another file is, or a directory on the way is
** now a file -- and keeps the recorded one when it cannot be looked at
** (a symlink loop) or when the new name is too long to record.
*/
#include "testutil.h"
#include "coordinator/internal.h"

static char *abs_of(const char *p)
{
  static char buf[4096];
  char *r = realpath(p, NULL);
  snprintf(buf, sizeof buf, "%s", r ? r : "(none)");
  free(r);
  return buf;
}

static void recorded(dbpool_coord *c, char *out, size_t cap)
{
  dbpool_coord_database(c, out, cap);
}

static void make_file(const char *p)
{
  int fd = open(p, O_CREAT | O_RDWR, 0644);
  REQUIRE(fd >= 0);
  close(fd);
}

TEST(another_file_at_the_recorded_path)
{
  const char *db = tu_db("first.db");
  char moved[600], got[DBPOOL_PATH_MAX];
  snprintf(moved, sizeof moved, "%s/moved.db", tu_dir);
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  dbpool_coord_close(c);
  REQUIRE(rename(db, moved) == 0);
  make_file(db); /* another file under the old name */
  CHECK_RC(dbpool_coord_open(moved, 0, &c), 0);
  recorded(c, got, sizeof got);
  CHECK_STR(got, abs_of(moved));
  dbpool_coord_close(c);
}

TEST(a_directory_on_the_recorded_path_became_a_file)
{
  char dir[600], db[700], dir2[600], db2[700], got[DBPOOL_PATH_MAX];
  snprintf(dir, sizeof dir, "%s/d", tu_dir);
  snprintf(db, sizeof db, "%s/x.db", dir);
  snprintf(dir2, sizeof dir2, "%s/d2", tu_dir);
  snprintf(db2, sizeof db2, "%s/x.db", dir2);
  REQUIRE(mkdir(dir, 0755) == 0);
  make_file(db);
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  dbpool_coord_close(c);
  REQUIRE(rename(dir, dir2) == 0);
  make_file(dir); /* d is a file now: d/x.db is ENOTDIR */
  CHECK_RC(dbpool_coord_open(db2, 0, &c), 0);
  recorded(c, got, sizeof got);
  CHECK_STR(got, abs_of(db2));
  dbpool_coord_close(c);
}

TEST(a_recorded_path_that_cannot_be_looked_at_is_kept)
{
  char dir[600], db[700], dir2[600], db2[700], got[DBPOOL_PATH_MAX], before[DBPOOL_PATH_MAX];
  snprintf(dir, sizeof dir, "%s/e", tu_dir);
  snprintf(db, sizeof db, "%s/x.db", dir);
  snprintf(dir2, sizeof dir2, "%s/e2", tu_dir);
  snprintf(db2, sizeof db2, "%s/x.db", dir2);
  REQUIRE(mkdir(dir, 0755) == 0);
  make_file(db);
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  recorded(c, before, sizeof before);
  dbpool_coord_close(c);
  REQUIRE(rename(dir, dir2) == 0);
  REQUIRE(symlink("e", dir) == 0); /* e -> e: ELOOP */
  CHECK_RC(dbpool_coord_open(db2, 0, &c), 0);
  recorded(c, got, sizeof got);
  CHECK_STR(got, before);
  dbpool_coord_close(c);
}

TEST(a_name_too_long_to_record_is_not_recorded)
{
  char dir[600], db[700], got[DBPOOL_PATH_MAX], before[DBPOOL_PATH_MAX];
  snprintf(dir, sizeof dir, "%s/f", tu_dir);
  snprintf(db, sizeof db, "%s/x.db", dir);
  REQUIRE(mkdir(dir, 0755) == 0);
  make_file(db);
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  recorded(c, before, sizeof before);
  dbpool_coord_close(c);
  /* A hard link at a path longer than DBPOOL_PATH_MAX, the old name gone. */
  static char longp[3000];
  snprintf(longp, sizeof longp, "%s", tu_dir);
  char part[201];
  memset(part, 'L', 200);
  part[200] = 0;
  while (strlen(longp) < DBPOOL_PATH_MAX + 10) {
    strcat(longp, "/");
    strcat(longp, part);
    REQUIRE(mkdir(longp, 0755) == 0);
  }
  strcat(longp, "/x.db");
  REQUIRE(link(db, longp) == 0);
  REQUIRE(unlink(db) == 0);
  CHECK_RC(dbpool_coord_open(longp, 0, &c), 0); /* the pool, already attached */
  recorded(c, got, sizeof got);
  CHECK_STR(got, before);
  dbpool_coord_close(c);
}

int main(void)
{
  tu_init("rename");
  RUN(another_file_at_the_recorded_path);
  RUN(a_directory_on_the_recorded_path_became_a_file);
  RUN(a_recorded_path_that_cannot_be_looked_at_is_kept);
  RUN(a_name_too_long_to_record_is_not_recorded);
  return tu_finish();
}
