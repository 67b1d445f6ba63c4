/*
** perms.c -- a pool segment's permissions mirror its database file's
** (dbpool_coord_open: "The segment is created with the read/write permission
** bits of the database file; a segment with an unexpected owner or mode ...
** is refused").
**
** Runs as root (skipped otherwise) to act as several users: database files
** are made for uid/gid 65534 ("nobody") and the pools are created by
** children that drop to that user (setgroups/setresgid/setresuid), so the
** segment's owner is the database's owner. 65533 plays another user, with
** or without membership in the database's group.
**
** Checks:
**   - the segment's mode is (database mode & 0666) | 0600 (segment.c,
**     expected_mode), its owner the creator, its group the database's; it is
**     never group- or world-writable unless the database is;
**   - what other users can then do follows: read-write attach needs write
**     permission, read-only attach read permission (holder_new -> -EROFS);
**   - a segment owned by a user who neither owns the database nor shares
**     its group with write permission (a squatter) is refused with -EACCES
**     and a message naming the segment, its owner and the database -- by the
**     database owner and by root alike; a group member with write
**     permission and root are acceptable owners;
**   - a segment whose mode differs from the expected one is refused by
**     anyone but its owner, and by its owner attaching read-only; its owner
**     attaching read-write repairs the mode (also after the database's mode
**     changed).
*/
#include <grp.h>
#include <stdatomic.h>

#include "testutil.h"

#define NOBODY 65534
#define OTHER 65533

typedef struct {
  int rc_open;   /* dbpool_coord_open's result */
  int rc_holder; /* dbpool_holder_new's (when opened) */
  int rc_acq;    /* acquire's (when a holder was made) */
  char msg[512]; /* last error after the open */
  char name[128];
} result;

static result *R;

/* In a child running as uid:gid (with supplementary group extra_gid, or
** none if -1): open db with flags, try a holder and a slot, close. */
static int attach_as(uid_t uid, gid_t gid, long extra_gid, const char *db, unsigned flags)
{
  memset(R, 0, sizeof *R);
  R->rc_open = R->rc_holder = R->rc_acq = 1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) exit(2);
  if (pid == 0) {
    alarm(20);
    gid_t groups[1] = {(gid_t)extra_gid};
    if (setgroups(extra_gid >= 0 ? 1 : 0, groups) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(uid, uid, uid) != 0)
      _exit(3);
    dbpool_coord *c = NULL;
    R->rc_open = dbpool_coord_open(db, flags, &c);
    snprintf(R->msg, sizeof R->msg, "%s", dbpool_last_error());
    if (c) {
      snprintf(R->name, sizeof R->name, "%s", dbpool_coord_segment_name(c));
      dbpool_holder *h = NULL;
      R->rc_holder = dbpool_holder_new(c, &h);
      if (h) {
        R->rc_acq = dbpool_holder_acquire(h, 0);
        dbpool_holder_free(h);
      }
      dbpool_coord_close(c);
    }
    _exit(0);
  }
  return tu_wait_child(pid, 20000);
}

/* A database file owned by uid:gid with mode. */
static const char *make_db(const char *name, uid_t uid, gid_t gid, mode_t mode)
{
  const char *p = tu_db(name);
  REQUIRE(chown(p, uid, gid) == 0 && chmod(p, mode) == 0);
  return p;
}

static void seg_path(const char *db, char *out, size_t cap)
{
  struct stat st;
  REQUIRE(stat(db, &st) == 0);
  const char *ns = "";
  dbpool_coord_namespace(&ns);
  snprintf(out, cap, "/dev/shm/dbpool.%s.%llx.%llx", ns, (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino);
}

static int seg_stat(const char *db, struct stat *st)
{
  char path[256];
  seg_path(db, path, sizeof path);
  return stat(path, st);
}

static void drop_segment(const char *db)
{
  char path[256];
  seg_path(db, path, sizeof path);
  unlink(path);
}

static mode_t seg_mode(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

static int in(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* --------------------------------------------------------------- mirroring */

TEST(segment_mode_mirrors_the_database)
{
  static const mode_t modes[] = {0600, 0640, 0660, 0644, 0666, 0664, 0604, 0400, 0444};
  for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
    char name[64];
    snprintf(name, sizeof name, "mirror-%04o.db", (unsigned)modes[i]);
    const char *db = make_db(name, NOBODY, NOBODY, modes[i]);
    CHECK_RC(attach_as(NOBODY, NOBODY, -1, db, 0), 0);
    CHECK_RC(R->rc_open, 0);
    CHECK_RC(R->rc_holder, 0);
    CHECK_RC(R->rc_acq, 0);
    if (R->rc_open) fprintf(stderr, "  db mode %04o: %s\n", (unsigned)modes[i], R->msg);
    struct stat st;
    CHECK(seg_stat(db, &st) == 0);
    mode_t want = (modes[i] & 0666) | 0600, have = st.st_mode & 07777;
    CHECK_RC(have, want);
    CHECK(st.st_uid == NOBODY && st.st_gid == NOBODY);
    if (!(modes[i] & 0002)) CHECK(!(have & 0002));
    if (!(modes[i] & 0020)) CHECK(!(have & 0020));
    CHECK(!(have & 0111)); /* never executable */
    /* Root may remove it (not in use). */
    CHECK_RC(dbpool_coord_remove(db, NULL, 0), 0);
    CHECK(seg_stat(db, &st) != 0);
    drop_segment(db);
  }
}

/* Made by root for somebody else's database: root owns it, and the group is
** the database's. */
TEST(segment_made_by_root_gets_the_database_group)
{
  const char *db = make_db("by-root.db", NOBODY, OTHER, 0660);
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  struct stat st;
  CHECK(seg_stat(db, &st) == 0);
  CHECK(st.st_uid == 0 && st.st_gid == OTHER && (st.st_mode & 07777) == 0660);
  dbpool_coord_close(c);
  /* The database's owner and group members can attach to it. */
  CHECK_RC(attach_as(NOBODY, NOBODY, -1, db, 0), 0);
  CHECK_RC(R->rc_open, -EACCES); /* 0660 root:65533: nobody is not in the group */
  CHECK_RC(attach_as(NOBODY, NOBODY, OTHER, db, 0), 0);
  CHECK_RC(R->rc_open, 0);
  CHECK_RC(R->rc_acq, 0);
  CHECK_RC(dbpool_coord_remove(db, NULL, 0), 0);
  drop_segment(db);
}

/* ---------------------------------------------------- what others can do */

TEST(other_users_get_what_the_mode_allows)
{
  struct {
    mode_t mode;
    int member;    /* OTHER is in the database's group */
    int rw, ro;    /* expected open results */
  } cases[] = {
      {0644, 0, -EACCES, 0},       {0666, 0, 0, 0},
      {0600, 0, -EACCES, -EACCES}, {0640, 0, -EACCES, -EACCES},
      {0640, 1, -EACCES, 0},       {0660, 1, 0, 0},
      {0660, 0, -EACCES, -EACCES}, {0604, 0, -EACCES, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int failures_before = tu_failures;
    char name[64];
    snprintf(name, sizeof name, "others-%zu.db", i);
    const char *db = make_db(name, NOBODY, NOBODY, cases[i].mode);
    CHECK_RC(attach_as(NOBODY, NOBODY, -1, db, 0), 0); /* the owner creates */
    CHECK_RC(R->rc_open, 0);
    long extra = cases[i].member ? NOBODY : -1;
    CHECK_RC(attach_as(OTHER, OTHER, extra, db, 0), 0);
    CHECK_RC(R->rc_open, cases[i].rw);
    if (cases[i].rw == 0) {
      CHECK_RC(R->rc_holder, 0);
      CHECK_RC(R->rc_acq, 0);
    } else {
      CHECK(in(R->msg, "cannot open pool segment"));
    }
    CHECK_RC(attach_as(OTHER, OTHER, extra, db, DBPOOL_OPEN_READONLY), 0);
    CHECK_RC(R->rc_open, cases[i].ro);
    if (cases[i].ro == 0) CHECK_RC(R->rc_holder, -EROFS);
    if (tu_failures != failures_before)
      fprintf(stderr, "  (case %zu: mode %04o, member %d)\n", i, (unsigned)cases[i].mode,
              cases[i].member);
    CHECK_RC(dbpool_coord_remove(db, NULL, 0), 0);
    drop_segment(db);
  }
}

/* ---------------------------------------------------------------- owners */

/* A valid segment for db, created by its owner, then re-owned. Returns its
** path in out. */
static void valid_segment_owned_by(const char *db, uid_t uid, gid_t gid, char *out,
                                   size_t cap)
{
  REQUIRE(attach_as(NOBODY, NOBODY, -1, db, 0) == 0 && R->rc_open == 0);
  seg_path(db, out, cap);
  REQUIRE(chown(out, uid, gid) == 0);
}

TEST(squatter_segment_is_refused)
{
  /* A world-writable database, so that everyone can open the segment and
  ** its mode is as expected: only its owner is wrong. */
  const char *db = make_db("squat.db", NOBODY, NOBODY, 0666);
  char path[256];
  valid_segment_owned_by(db, OTHER, OTHER, path, sizeof path);
  CHECK_RC(seg_mode(path), 0666);
  struct stat before;
  REQUIRE(stat(path, &before) == 0);

  /* The database's owner refuses it, read-write and read-only. */
  CHECK_RC(attach_as(NOBODY, NOBODY, -1, db, 0), 0);
  CHECK_RC(R->rc_open, -EACCES);
  CHECK(in(R->msg, "owned by uid 65533") && in(R->msg, "squat.db") &&
        in(R->msg, "refusing to attach"));
  char shm_name[256];
  snprintf(shm_name, sizeof shm_name, "%s", path + strlen("/dev/shm"));
  CHECK(in(R->msg, shm_name));
  if (!in(R->msg, "owned by uid 65533")) fprintf(stderr, "  message: %s\n", R->msg);
  CHECK_RC(attach_as(NOBODY, NOBODY, -1, db, DBPOOL_OPEN_READONLY), 0);
  CHECK_RC(R->rc_open, -EACCES);
  /* So does root. */
  dbpool_coord *c = NULL;
  CHECK_RC(dbpool_coord_open(db, 0, &c), -EACCES);
  CHECK(in(dbpool_last_error(), "owned by uid 65533"));
  CHECK_RC(dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &c), -EACCES);
  CHECK(c == NULL);
  /* So does a third user. (The squatter itself may use its own segment.) */
  CHECK_RC(attach_as(OTHER - 1, OTHER - 1, -1, db, 0), 0);
  CHECK_RC(R->rc_open, -EACCES);
  CHECK(in(R->msg, "owned by uid 65533"));
  struct stat after;
  CHECK(stat(path, &after) == 0);
  CHECK(after.st_ino == before.st_ino && after.st_uid == OTHER &&
        after.st_mode == before.st_mode && after.st_mtime == before.st_mtime);

  /* Control: the very same file owned by the database's owner is fine. */
  REQUIRE(chown(path, NOBODY, NOBODY) == 0);
  CHECK_RC(attach_as(NOBODY, NOBODY, -1, db, 0), 0);
  CHECK_RC(R->rc_open, 0);
  CHECK_RC(R->rc_acq, 0);
  unlink(path);
}

TEST(group_members_and_root_are_acceptable_owners)
{
  /* 0660: members of the database's group may write it, so one of them may
  ** have created the pool. */
  const char *db = make_db("group.db", NOBODY, NOBODY, 0660);
  char path[256];
  valid_segment_owned_by(db, OTHER, NOBODY, path, sizeof path);
  CHECK_RC(attach_as(NOBODY, NOBODY, -1, db, 0), 0);
  CHECK_RC(R->rc_open, 0);
  CHECK_RC(R->rc_acq, 0);
  unlink(path);

  /* 0640: group members cannot write the database: not an acceptable owner
  ** (attaching read-only, since the owner cannot open a 0640 file of
  ** another user for writing anyway). */
  const char *db2 = make_db("group-ro.db", NOBODY, NOBODY, 0640);
  valid_segment_owned_by(db2, OTHER, NOBODY, path, sizeof path);
  CHECK_RC(attach_as(NOBODY, NOBODY, -1, db2, DBPOOL_OPEN_READONLY), 0);
  CHECK_RC(R->rc_open, -EACCES);
  CHECK(in(R->msg, "owned by uid 65533"));
  unlink(path);

  /* Root-owned (root made it): accepted. */
  const char *db3 = make_db("root-owned.db", NOBODY, NOBODY, 0666);
  valid_segment_owned_by(db3, 0, 0, path, sizeof path);
  CHECK_RC(attach_as(NOBODY, NOBODY, -1, db3, 0), 0);
  CHECK_RC(R->rc_open, 0);
  CHECK_RC(R->rc_acq, 0);
  unlink(path);
}

/* ------------------------------------------------------------------ modes */

TEST(unexpected_mode_is_refused_except_by_the_owner_who_repairs_it)
{
  const char *db = make_db("mode.db", NOBODY, NOBODY, 0644);
  char path[256];
  valid_segment_owned_by(db, NOBODY, NOBODY, path, sizeof path);
  REQUIRE(chmod(path, 0666) == 0); /* world-writable: not what 0644 allows */

  /* Another user (who can open it now) refuses it, and changes nothing. */
  CHECK_RC(attach_as(OTHER, OTHER, -1, db, 0), 0);
  CHECK_RC(R->rc_open, -EACCES);
  CHECK(in(R->msg, "has mode 0666 but the database") && in(R->msg, "has 0644") &&
        in(R->msg, "mode.db"));
  if (!in(R->msg, "has mode 0666")) fprintf(stderr, "  message: %s\n", R->msg);
  CHECK_RC(seg_mode(path), 0666);
  /* Root is not its owner either. */
  dbpool_coord *c = NULL;
  CHECK_RC(dbpool_coord_open(db, 0, &c), -EACCES);
  CHECK(in(dbpool_last_error(), "has mode 0666"));
  CHECK_RC(seg_mode(path), 0666);
  /* The owner attaching read-only does not repair. */
  CHECK_RC(attach_as(NOBODY, NOBODY, -1, db, DBPOOL_OPEN_READONLY), 0);
  CHECK_RC(R->rc_open, -EACCES);
  CHECK_RC(seg_mode(path), 0666);
  /* The owner attaching read-write repairs it. */
  CHECK_RC(attach_as(NOBODY, NOBODY, -1, db, 0), 0);
  CHECK_RC(R->rc_open, 0);
  CHECK_RC(R->rc_acq, 0);
  CHECK_RC(seg_mode(path), 0644);
  /* Now the other user can only read. */
  CHECK_RC(attach_as(OTHER, OTHER, -1, db, 0), 0);
  CHECK_RC(R->rc_open, -EACCES);
  CHECK_RC(attach_as(OTHER, OTHER, -1, db, DBPOOL_OPEN_READONLY), 0);
  CHECK_RC(R->rc_open, 0);

  /* Too narrow a mode is repaired the same way. */
  REQUIRE(chmod(path, 0600) == 0);
  CHECK_RC(attach_as(NOBODY, NOBODY, -1, db, 0), 0);
  CHECK_RC(R->rc_open, 0);
  CHECK_RC(seg_mode(path), 0644);
  unlink(path);
}

TEST(database_mode_change_is_followed_by_the_owner)
{
  const char *db = make_db("chmod.db", NOBODY, NOBODY, 0644);
  char path[256];
  valid_segment_owned_by(db, NOBODY, NOBODY, path, sizeof path);
  CHECK_RC(seg_mode(path), 0644);
  /* Wider: group-writable. */
  REQUIRE(chmod(db, 0664) == 0);
  CHECK_RC(attach_as(OTHER, OTHER, NOBODY, db, DBPOOL_OPEN_READONLY), 0);
  CHECK_RC(R->rc_open, -EACCES); /* not the owner: cannot repair */
  CHECK(in(R->msg, "has mode 0644") && in(R->msg, "has 0664"));
  CHECK_RC(attach_as(NOBODY, NOBODY, -1, db, 0), 0);
  CHECK_RC(R->rc_open, 0);
  CHECK_RC(seg_mode(path), 0664);
  CHECK_RC(attach_as(OTHER, OTHER, NOBODY, db, 0), 0); /* group member, rw now */
  CHECK_RC(R->rc_open, 0);
  CHECK_RC(R->rc_acq, 0);
  /* Narrower: owner only. */
  REQUIRE(chmod(db, 0600) == 0);
  CHECK_RC(attach_as(NOBODY, NOBODY, -1, db, 0), 0);
  CHECK_RC(R->rc_open, 0);
  CHECK_RC(seg_mode(path), 0600);
  CHECK_RC(attach_as(OTHER, OTHER, NOBODY, db, 0), 0);
  CHECK_RC(R->rc_open, -EACCES);
  unlink(path);
}

int main(void)
{
  tu_init("perms");
  if (geteuid() != 0) {
    printf("skipped: perms needs root (to act as several users)\n");
    return tu_finish();
  }
  R = tu_shared(sizeof *R);
  RUN(segment_mode_mirrors_the_database);
  RUN(segment_made_by_root_gets_the_database_group);
  RUN(other_users_get_what_the_mode_allows);
  RUN(squatter_segment_is_refused);
  RUN(group_members_and_root_are_acceptable_owners);
  RUN(unexpected_mode_is_refused_except_by_the_owner_who_repairs_it);
  RUN(database_mode_change_is_followed_by_the_owner);
  return tu_finish();
}
