/*
** candidate_names.c -- which of a database's candidate segment names
** (naming.c, attach.c) holds its pool, when something else sits under the
** first ones:
**
** - a segment owned by a user who cannot read the database (planted, or
**   left by a former reader) is skipped; if it is a valid pool segment it is
**   marked removed, so that whoever uses it moves; the pool is made under
**   the next name, and opens keep finding it there;
** - once the first name holds a usable pool again, the later one is
**   "shadowed": the next open marks it removed and attaches to the first,
**   and its holders can rejoin there;
** - when every name is held by such segments, opening fails with -EBUSY
**   and a message saying root can collect them;
** - a FIFO under the name is refused (-EBADMSG, "not a regular file")
**   without blocking;
** - a segment whose recorded key names another file (birth time) is
**   refused (-EBADMSG).
*/
#include <pthread.h>

#include "testutil.h"
#include "coordinator/internal.h"

#define NOBODY 65534

static void cand_path(const char *db, unsigned cand, char *out, size_t cap)
{
  char name[DBP_SEGMENT_NAME_MAX];
  tu_pool_name(db, name, sizeof name);
  if (cand) snprintf(out, cap, "/dev/shm%s~%u", name, cand);
  else snprintf(out, cap, "/dev/shm%s", name);
}

static int copy_file(const char *from, const char *to, uid_t uid)
{
  char cmd[2200];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
  if (system(cmd) != 0) return -1;
  return chown(to, uid, uid);
}

static bool removed_segment(const char *path)
{
  int fd = open(path, O_RDONLY);
  if (fd < 0) return false;
  dbp_header *h = mmap(NULL, DBP_SEGMENT_SIZE, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (h == MAP_FAILED) return false;
  bool r = (dbp_gate_load(h).bits & G_REMOVED) != 0;
  munmap(h, DBP_SEGMENT_SIZE);
  return r;
}

TEST(an_untrusted_segment_is_skipped_and_a_shadowed_pool_is_left)
{
  const char *db = tu_db("shadow.db");
  REQUIRE(chmod(db, 0600) == 0); /* nobody cannot read it */
  char p0[512], p1[512], keep[600];
  cand_path(db, 0, p0, sizeof p0);
  cand_path(db, 1, p1, sizeof p1);
  snprintf(keep, sizeof keep, "%s/segment-copy", tu_dir);

  /* A valid segment of this database, owned by nobody, under the first
  ** name (made by us, copied, the original removed). */
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  REQUIRE(copy_file(p0, keep, 0) == 0);
  dbpool_coord_close(c);
  CHECK_RC(dbpool_coord_remove(db, NULL, 1), 0);
  REQUIRE(copy_file(keep, p0, NOBODY) == 0);
  CHECK(!removed_segment(p0));

  /* It is skipped, marked removed -- and, as we are root, who may delete
  ** any segment, deleted -- and the pool made under name 1. */
  int planted = open(p0, O_RDONLY);
  REQUIRE(planted >= 0);
  dbpool_coord *c1;
  CHECK_RC(dbpool_coord_open(db, 0, &c1), 0);
  CHECK(strstr(dbpool_coord_segment_name(c1), "~1") != NULL);
  char fdpath[64];
  snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", planted);
  CHECK(removed_segment(fdpath));
  close(planted);
  CHECK(access(p0, F_OK) != 0);
  dbpool_coord_close(c1);
  /* Found there again, by path (cached: the first name is still unusable)
  ** and read-only (a fresh attachment, which skips it without marking). */
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK(c == c1);
  dbpool_coord *ro;
  CHECK_RC(dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &ro), 0);
  CHECK_STR(dbpool_coord_segment_name(ro), dbpool_coord_segment_name(c1));
  dbpool_coord_close(ro);
  dbpool_holder *h;
  CHECK_RC(dbpool_holder_new(c1, &h), 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);

  /* The first name holds a usable pool again (root's, valid, not
  ** removed): the next open leaves the pool under name 1 for it. */
  REQUIRE(copy_file(keep, p0, 0) == 0);
  dbpool_coord *c0;
  CHECK_RC(dbpool_coord_open(db, 0, &c0), 0);
  CHECK(c0 != c1);
  CHECK(strchr(dbpool_coord_segment_name(c0), '~') == NULL);
  CHECK(dbp_coord_removed(c1));
  CHECK(dbp_coord_removed(dbp_holder_coord(h)));
  /* The holder moves there with its slot. */
  CHECK_RC(dbp_holder_rejoin(&h, db), 1);
  CHECK(dbp_holder_coord(h) == c0 && dbpool_holder_held(h));
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(c0, &st), 0);
  CHECK(st.active == 1);
  dbpool_holder_free(h);
  dbpool_coord_close(c0);
  dbpool_coord_close(c);
  unlink(p1);
}

TEST(every_name_held_by_untrusted_segments_is_busy)
{
  const char *db = tu_db("busy.db");
  REQUIRE(chmod(db, 0600) == 0);
  char path[DBP_CANDIDATES][512];
  for (unsigned k = 0; k < DBP_CANDIDATES; k++) {
    cand_path(db, k, path[k], sizeof path[k]);
    int fd = open(path[k], O_CREAT | O_EXCL | O_RDWR, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, (off_t)(k % 2 ? DBP_SEGMENT_SIZE : 10)) == 0);
    REQUIRE(fchown(fd, NOBODY, NOBODY) == 0);
    close(fd);
  }
  dbpool_coord *c = (dbpool_coord *)1;
  CHECK_RC(dbpool_coord_open(db, 0, &c), -EBUSY);
  CHECK(c == NULL);
  CHECK(strstr(dbpool_last_error(), "every name the pool of") != NULL);
  CHECK(strstr(dbpool_last_error(), "dbpoolctl gc") != NULL);
  CHECK_RC(dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &c), -EBUSY);
  for (unsigned k = 0; k < DBP_CANDIDATES; k++) {
    struct stat st;
    CHECK(stat(path[k], &st) == 0 && st.st_uid == NOBODY); /* untouched */
    unlink(path[k]);
  }
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK(strchr(dbpool_coord_segment_name(c), '~') == NULL);
  dbpool_coord_close(c);
}

TEST(a_fifo_under_the_name_is_refused_without_blocking)
{
  const char *db = tu_db("fifo.db");
  char p0[512];
  cand_path(db, 0, p0, sizeof p0);
  REQUIRE(mkfifo(p0, 0644) == 0);
  dbpool_coord *c = (dbpool_coord *)1;
  CHECK_RC(dbpool_coord_open(db, 0, &c), -EBADMSG);
  CHECK(strstr(dbpool_last_error(), "failed validation: not a regular file") != NULL);
  CHECK(c == NULL);
  char name[DBP_SEGMENT_NAME_MAX];
  tu_pool_name(db, name, sizeof name);
  CHECK_RC(dbpool_coord_open_segment(name, DBPOOL_OPEN_READONLY, &c), -EBADMSG);
  CHECK(strstr(dbpool_last_error(), "not a regular file") != NULL);
  unlink(p0);
}

TEST(a_segment_of_another_birth_is_refused)
{
  const char *db = tu_db("birth.db");
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  uint64_t birth = c->hdr->key_birth;
  c->hdr->key_birth = birth + 1;
  /* A process that never attached validates it. */
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    dbpool_coord *cc = NULL;
    CCHECK(dbpool_coord_open(db, 0, &cc) == -EBADMSG);
    CCHECK(strstr(dbpool_last_error(), "belongs to another database file") != NULL);
    CHILD_EXIT();
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  c->hdr->key_birth = birth;
  dbpool_coord_close(c);
}

TEST(a_pool_whose_owner_can_no_longer_read_the_database_is_left)
{
  const char *db = tu_db("lostreader.db");
  REQUIRE(chown(db, NOBODY, NOBODY) == 0); /* nobody's: so is the segment */
  dbpool_coord *c, *again;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  char p0[512];
  cand_path(db, 0, p0, sizeof p0);
  struct stat st;
  CHECK(stat(p0, &st) == 0 && st.st_uid == NOBODY);
  ino_t first = st.st_ino;
  dbpool_coord_close(c); /* cached */
  /* root's now, and private: the segment's owner cannot read it. */
  REQUIRE(chown(db, 0, 0) == 0 && chmod(db, 0600) == 0);
  CHECK_RC(dbpool_coord_open(db, 0, &again), 0);
  /* The old one was marked removed and (by root) deleted; a new pool,
  ** root's, took its name. */
  CHECK(stat(p0, &st) == 0 && st.st_uid == 0 && st.st_ino != first);
  CHECK(!dbp_coord_removed(again));
  dbpool_coord_close(again);
}

int main(void)
{
  tu_init("candidates");
  RUN(an_untrusted_segment_is_skipped_and_a_shadowed_pool_is_left);
  RUN(every_name_held_by_untrusted_segments_is_busy);
  RUN(a_fifo_under_the_name_is_refused_without_blocking);
  RUN(a_segment_of_another_birth_is_refused);
  RUN(a_pool_whose_owner_can_no_longer_read_the_database_is_left);
  return tu_finish();
}
