/*
** perms.c -- who may join, see and steer a pool (docs/operations.md, "Who
** may join or steer a pool"; coordinator/perms.c, dbfile.c, naming.c).
**
** Runs as root (skipped otherwise) to act as several users: children drop
** to a uid/gid (setgroups/setresgid/setresuid) and use the library. The
** database's owner is 65534 ("nobody"); 65533 and 65532 play other users,
** members of the database's group or not.
**
** Checks:
**   - whoever can read the database can join its pool (hold a slot), in any
**     order, whoever created the pool: a reader first, then the owner and
**     root; root first (the segment is given to the database's owner and
**     group), then the owner; a group member first on a database whose owner
**     is not in its group (a POSIX ACL entry lets the owner in);
**   - whoever cannot read it can neither join nor see it: refused by the
**     library with a message, and by the kernel when opening the segment;
**   - steering (settings, removal) needs write permission on the database;
**   - the segment follows chmod of the database (its owner or root fixes it
**     when attaching; a new reader meanwhile gets a message saying so);
**   - a segment owned by a user who cannot read the database (planted, or
**     left by a former reader) is skipped by everyone: the pool lives under
**     the next candidate name, the same for every user;
**   - the owner's removal of a pool whose segment another user made marks
**     it removed (only that user or root may delete the name) and the next
**     open starts a fresh pool under another name; root collects the old;
**   - trust follows the kernel's ACL order: a group member denied by a named
**     ACL entry is no reader, and its segment is skipped;
**   - one database never has two pools in use: not when its segment's owner
**     unlinks a removed segment while another user creates one under the
**     next name (linkat is slowed down here to hold that window open), nor
**     when the database is narrowed under a long-running process;
**   - gc by a user who cannot look the database up, or may not steer it,
**     changes nothing.
*/
#include <grp.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

#include "testutil.h"

#define NOBODY 65534
#define OTHER 65533
#define THIRD 65532

enum { DO_JOIN, DO_VIEW, DO_SET, DO_REMOVE, DO_RAW_OPEN };

typedef struct {
  int rc_open;   /* dbpool_coord_open's result */
  int rc_holder; /* dbpool_holder_new's (when opened read-write) */
  int rc_acq;    /* acquire's (when a holder was made) */
  int rc_act;    /* set / remove / raw open of the segment */
  char msg[512]; /* first error message */
  char name[128];
} result;

static result *R;

/* linkat, slowed down on demand for pool segments (a race's window held
** open: everything else is the library's own doing). */
typedef struct {
  _Atomic int in_linkat;
  _Atomic int step;
  int rc[2];
  char name[2][128];
} race_state;
static race_state *RS;
static int linkat_role; /* this process's: 1 links slowly, 2 links last */

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
  if (linkat_role && strstr(newpath, "/dev/shm/dbpool.")) {
    if (linkat_role == 1) {
      atomic_store(&RS->in_linkat, 1);
      tu_sleep_ms(tu_ms(500));
    } else { /* not before the other has attached (at most 2 s) */
      for (long i = 0; i < tu_polls(2000) && atomic_load(&RS->step) < 1; i++) tu_sleep_ms(1);
    }
  }
  return (int)syscall(SYS_linkat, olddirfd, oldpath, newdirfd, newpath, flags);
}

static void become(uid_t uid, long extra_gid)
{
  gid_t groups[1] = {(gid_t)extra_gid};
  if (setgroups(extra_gid >= 0 ? 1 : 0, groups) != 0 || setresgid(uid, uid, uid) != 0 ||
      setresuid(uid, uid, uid) != 0)
    _exit(3);
}

static void note(const char *msg)
{
  if (!R->msg[0]) snprintf(R->msg, sizeof R->msg, "%s", msg);
}

/* In a child running as uid:gid (with the supplementary group extra_gid,
** or none if -1), do one thing to db's pool; results in *R. */
static int as_user(uid_t uid, gid_t gid, long extra_gid, int what, const char *db)
{
  memset(R, 0, sizeof *R);
  R->rc_open = R->rc_holder = R->rc_acq = R->rc_act = 1;
  char seg[256];
  tu_pool_name(db, seg, sizeof seg);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) exit(2);
  if (pid == 0) {
    alarm(tu_sec(20));
    gid_t groups[1] = {(gid_t)extra_gid};
    if (setgroups(extra_gid >= 0 ? 1 : 0, groups) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(uid, uid, uid) != 0)
      _exit(3);
    if (what == DO_RAW_OPEN) {
      char path[300];
      snprintf(path, sizeof path, "/dev/shm%s", seg);
      int fd = open(path, O_RDWR);
      R->rc_act = fd >= 0 ? 0 : -errno;
      _exit(0);
    }
    if (what == DO_REMOVE) {
      R->rc_act = dbpool_coord_remove(db, NULL, 1);
      note(dbpool_last_error());
      _exit(0);
    }
    dbpool_coord *c = NULL;
    R->rc_open = dbpool_coord_open(db, what == DO_VIEW ? DBPOOL_OPEN_READONLY : 0, &c);
    note(dbpool_last_error());
    if (c) {
      snprintf(R->name, sizeof R->name, "%s", dbpool_coord_segment_name(c));
      if (what == DO_SET) {
        R->rc_act = dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 5);
        note(dbpool_last_error());
      } else if (what == DO_JOIN) {
        dbpool_holder *h = NULL;
        R->rc_holder = dbpool_holder_new(c, &h);
        note(dbpool_last_error());
        if (h) {
          R->rc_acq = dbpool_holder_acquire(h, 0);
          note(dbpool_last_error());
          dbpool_holder_free(h);
        }
      }
      dbpool_coord_close(c);
    }
    _exit(0);
  }
  return tu_wait_child(pid, 20000);
}

static int joins(uid_t uid, gid_t gid, long extra, const char *db)
{
  return as_user(uid, gid, extra, DO_JOIN, db) == 0 && R->rc_open == 0 &&
         R->rc_holder == 0 && R->rc_acq == 0;
}

/* A database file owned by uid:gid with mode. */
static const char *make_db(const char *name, uid_t uid, gid_t gid, mode_t mode)
{
  const char *p = tu_db(name);
  REQUIRE(chown(p, uid, gid) == 0 && chmod(p, mode) == 0);
  return p;
}

static void seg_path(const char *db, unsigned cand, char *out, size_t cap)
{
  char name[200];
  tu_pool_name(db, name, sizeof name);
  if (cand) snprintf(out, cap, "/dev/shm%s~%u", name, cand);
  else snprintf(out, cap, "/dev/shm%s", name);
}

static int seg_stat(const char *db, struct stat *st)
{
  char path[256];
  seg_path(db, 0, path, sizeof path);
  return stat(path, st);
}

static void drop_segments(const char *db)
{
  char path[256];
  for (unsigned k = 0; k < 8; k++) {
    seg_path(db, k, path, sizeof path);
    unlink(path);
  }
}

static int has_acl(const char *path)
{
  return getxattr(path, "system.posix_acl_access", NULL, 0) > 0;
}

static int in(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* --------------------------------------------------------------- mirroring */

/* The owner creates the pool: the segment is the owner's and the
** database's group's, read-write for every class that can read the
** database, never executable, no ACL needed. */
TEST(segment_mirrors_the_databases_readers)
{
  static const mode_t modes[] = {0600, 0640, 0660, 0644, 0666, 0664, 0604, 0400, 0444};
  for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
    char name[64];
    snprintf(name, sizeof name, "mirror-%04o.db", (unsigned)modes[i]);
    const char *db = make_db(name, NOBODY, NOBODY, modes[i]);
    CHECK(joins(NOBODY, NOBODY, -1, db));
    if (R->rc_open) fprintf(stderr, "  db mode %04o: %s\n", (unsigned)modes[i], R->msg);
    struct stat st;
    CHECK(seg_stat(db, &st) == 0);
    mode_t m = modes[i];
    mode_t want = 0600 | (m & 040 ? 060 : 0) | (m & 04 ? 06 : 0), have = st.st_mode & 07777;
    CHECK_RC(have, want);
    CHECK(st.st_uid == NOBODY && st.st_gid == NOBODY);
    char path[256];
    seg_path(db, 0, path, sizeof path);
    CHECK(!has_acl(path));
    CHECK_RC(dbpool_coord_remove(db, NULL, 0), 0); /* root may remove it */
    CHECK(seg_stat(db, &st) != 0);
    drop_segments(db);
  }
}

/* ------------------------------------------------------------ any order */

/* The first repro: a user who can only read a 0644 database opens
** it first; the owner and root must still get in. */
TEST(a_reader_first_locks_nobody_out)
{
  const char *db = make_db("reader-first.db", NOBODY, NOBODY, 0644);
  CHECK(joins(OTHER, OTHER, -1, db)); /* read is enough to join */
  struct stat st;
  CHECK(seg_stat(db, &st) == 0);
  CHECK(st.st_uid == OTHER && (st.st_mode & 0666) == 0666);
  CHECK(joins(NOBODY, NOBODY, -1, db));
  if (R->rc_open) fprintf(stderr, "  owner: %s\n", R->msg);
  dbpool_coord *c = NULL;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK_RC(strcmp(dbpool_coord_segment_name(c), R->name), 0); /* one pool */
  dbpool_holder *h = NULL;
  CHECK_RC(dbpool_holder_new(c, &h), 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  dbpool_holder_free(h);
  /* The reader cannot steer; the owner and root can. */
  CHECK_RC(as_user(OTHER, OTHER, -1, DO_SET, db), 0);
  CHECK_RC(R->rc_act, -EPERM);
  CHECK(in(R->msg, "write permission") && in(R->msg, "reader-first.db"));
  CHECK_RC(as_user(NOBODY, NOBODY, -1, DO_SET, db), 0);
  CHECK_RC(R->rc_act, 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 7), 0);
  dbpool_coord_close(c);
  CHECK_RC(dbpool_coord_remove(db, NULL, 0), 0);
  drop_segments(db);
}

/* The second repro: root runs `dbpoolctl set` first on somebody
** else's database. The segment is given to the database's owner and group,
** so its owner joins, and can remove it. */
TEST(root_first_gives_the_pool_to_the_owner)
{
  const char *db = make_db("by-root.db", NOBODY, OTHER, 0640);
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 3), 0);
  dbpool_coord_close(c);
  struct stat st;
  CHECK(seg_stat(db, &st) == 0);
  CHECK(st.st_uid == NOBODY && st.st_gid == OTHER && (st.st_mode & 07777) == 0660);
  CHECK(joins(NOBODY, NOBODY, -1, db));
  CHECK(joins(THIRD, THIRD, OTHER, db)); /* a group member reads: joins */
  CHECK_RC(as_user(THIRD, THIRD, -1, DO_JOIN, db), 0); /* not a member */
  CHECK_RC(R->rc_open, -EACCES);
  CHECK(in(R->msg, "cannot read the database") && in(R->msg, "by-root.db"));
  CHECK_RC(as_user(NOBODY, NOBODY, -1, DO_REMOVE, db), 0);
  CHECK_RC(R->rc_act, 0);
  CHECK(seg_stat(db, &st) != 0);
  drop_segments(db);
}

/* A group member creates the pool of a database whose owner is not in the
** group: an ACL entry gives the owner its access. */
TEST(a_group_member_first_lets_the_owner_in)
{
  const char *db = make_db("member-first.db", NOBODY, OTHER, 0640);
  CHECK(joins(THIRD, THIRD, OTHER, db));
  struct stat st;
  CHECK(seg_stat(db, &st) == 0);
  CHECK(st.st_uid == THIRD && st.st_gid == OTHER);
  char path[256];
  seg_path(db, 0, path, sizeof path);
  CHECK(has_acl(path));
  CHECK(!(st.st_mode & 07)); /* others: nothing */
  CHECK(joins(NOBODY, NOBODY, -1, db)); /* owner, not in the group */
  if (R->rc_open) fprintf(stderr, "  owner: %s\n", R->msg);
  CHECK_RC(as_user(THIRD - 1, THIRD - 1, -1, DO_RAW_OPEN, db), 0);
  CHECK_RC(R->rc_act, -EACCES);
  unlink(path);
  drop_segments(db);
}

/* ------------------------------------------------------- who gets what */

TEST(joining_follows_read_permission)
{
  struct {
    mode_t mode;
    int member; /* OTHER is in the database's group */
    int can;    /* may read the database, so may join and see */
  } cases[] = {
      {0644, 0, 1}, {0666, 0, 1}, {0600, 0, 0}, {0640, 0, 0}, {0640, 1, 1},
      {0660, 1, 1}, {0660, 0, 0}, {0604, 0, 1}, {0604, 1, 0}, {0400, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int failures_before = tu_failures;
    char name[64];
    snprintf(name, sizeof name, "others-%zu.db", i);
    const char *db = make_db(name, NOBODY, NOBODY, cases[i].mode);
    CHECK(joins(NOBODY, NOBODY, -1, db)); /* the owner creates */
    long extra = cases[i].member ? NOBODY : -1;
    CHECK_RC(as_user(OTHER, OTHER, extra, DO_JOIN, db), 0);
    CHECK_RC(R->rc_open, cases[i].can ? 0 : -EACCES);
    if (cases[i].can) CHECK_RC(R->rc_acq, 0);
    else CHECK(in(R->msg, "cannot read the database"));
    CHECK_RC(as_user(OTHER, OTHER, extra, DO_VIEW, db), 0);
    CHECK_RC(R->rc_open, cases[i].can ? 0 : -EACCES);
    /* The kernel agrees: the segment opens for exactly the readers. */
    CHECK_RC(as_user(OTHER, OTHER, extra, DO_RAW_OPEN, db), 0);
    CHECK_RC(R->rc_act, cases[i].can ? 0 : -EACCES);
    if (tu_failures != failures_before)
      fprintf(stderr, "  (case %zu: mode %04o, member %d)\n", i, (unsigned)cases[i].mode,
              cases[i].member);
    CHECK_RC(dbpool_coord_remove(db, NULL, 0), 0);
    drop_segments(db);
  }
}

TEST(steering_needs_write_permission)
{
  const char *db = make_db("steer.db", NOBODY, OTHER, 0664);
  CHECK(joins(NOBODY, NOBODY, -1, db));
  CHECK_RC(as_user(THIRD, THIRD, -1, DO_SET, db), 0); /* reads only */
  CHECK_RC(R->rc_act, -EPERM);
  CHECK_RC(as_user(THIRD, THIRD, -1, DO_REMOVE, db), 0);
  CHECK_RC(R->rc_act, -EPERM);
  CHECK(in(R->msg, "write permission"));
  CHECK_RC(as_user(THIRD, THIRD, OTHER, DO_SET, db), 0); /* group writer */
  CHECK_RC(R->rc_act, 0);
  dbpool_coord *c;
  int64_t v = 0;
  CHECK_RC(dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &c), 0);
  CHECK_RC(dbpool_coord_get(c, DBPOOL_SETTING_MAX_CONNECTIONS, &v), 0);
  CHECK_RC(v, 5);
  dbpool_coord_close(c);
  CHECK_RC(dbpool_coord_remove(db, NULL, 0), 0);
  drop_segments(db);
}

/* ------------------------------------------------------ mode changes */

/* The third repro: chmod 664 after the pool exists refuses nobody,
** and the owner can still remove the pool. Then narrower and wider. */
TEST(the_segment_follows_chmod)
{
  const char *db = make_db("chmod.db", NOBODY, NOBODY, 0644);
  CHECK(joins(NOBODY, NOBODY, -1, db));
  char path[256];
  seg_path(db, 0, path, sizeof path);
  REQUIRE(chmod(db, 0664) == 0);
  CHECK(joins(NOBODY, NOBODY, -1, db));
  CHECK(joins(OTHER, OTHER, -1, db));
  /* Narrower: owner only. The owner's next attach closes the segment. */
  REQUIRE(chmod(db, 0600) == 0);
  CHECK(joins(NOBODY, NOBODY, -1, db));
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600);
  CHECK_RC(as_user(OTHER, OTHER, -1, DO_RAW_OPEN, db), 0);
  CHECK_RC(R->rc_act, -EACCES);
  /* Wider again: a reader arriving before the owner is told why it cannot
  ** get in yet; once the owner (or root) attached, it joins. */
  REQUIRE(chmod(db, 0644) == 0);
  CHECK_RC(as_user(OTHER, OTHER, -1, DO_JOIN, db), 0);
  CHECK_RC(R->rc_open, -EACCES);
  CHECK(in(R->msg, "predate") && in(R->msg, "uid 65534"));
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0); /* root fixes it */
  dbpool_coord_close(c);
  CHECK(joins(OTHER, OTHER, -1, db));
  CHECK_RC(as_user(NOBODY, NOBODY, -1, DO_REMOVE, db), 0);
  CHECK_RC(R->rc_act, 0);
  CHECK(stat(path, &st) != 0);
  drop_segments(db);
}

/* ------------------------------------------- segments nobody should use */

/* Another user's file planted under the pool's name (here: a real segment
** given away, so only its owner is wrong) is skipped by everyone alike;
** being writable, it is marked removed on the way, so that whoever used it
** leaves it; root deletes it. */
TEST(a_planted_segment_is_skipped)
{
  const char *db = make_db("planted.db", NOBODY, NOBODY, 0640);
  CHECK(joins(NOBODY, NOBODY, -1, db));
  char path[256], path1[256];
  seg_path(db, 0, path, sizeof path);
  seg_path(db, 1, path1, sizeof path1);
  REQUIRE(chown(path, OTHER, OTHER) == 0 && chmod(path, 0666) == 0);
  struct stat after;
  CHECK(joins(NOBODY, NOBODY, -1, db));
  CHECK(in(R->name, "~1"));
  CHECK(stat(path, &after) == 0 && after.st_uid == OTHER); /* not ours to delete */
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK(in(dbpool_coord_segment_name(c), "~1"));
  dbpool_coord_close(c);
  dbpool_coord_gc(0, NULL, NULL); /* root deletes it (if its open did not) */
  CHECK(stat(path, &after) != 0);
  CHECK(stat(path1, &after) == 0);
  CHECK(joins(NOBODY, NOBODY, -1, db));
  CHECK(in(R->name, "~1"));
  drop_segments(db);
}

/* A reader made the pool; then the owner narrowed the database so that
** reader is out. Its segment is no longer anyone's pool. */
TEST(a_former_readers_segment_is_skipped)
{
  const char *db = make_db("former.db", NOBODY, NOBODY, 0644);
  CHECK(joins(OTHER, OTHER, -1, db));
  REQUIRE(chmod(db, 0640) == 0);
  CHECK(joins(NOBODY, NOBODY, -1, db));
  CHECK(in(R->name, "~1"));
  CHECK_RC(as_user(OTHER, OTHER, -1, DO_JOIN, db), 0);
  CHECK_RC(R->rc_open, -EACCES);
  drop_segments(db);
}

/* The owner removes a pool whose segment a reader made: the name cannot be
** deleted (sticky /dev/shm), so it is marked removed; the next open starts
** fresh under another name, with default settings. */
TEST(the_owner_removes_a_pool_a_reader_made)
{
  const char *db = make_db("owner-rm.db", NOBODY, NOBODY, 0644);
  CHECK(joins(OTHER, OTHER, -1, db));
  CHECK_RC(as_user(NOBODY, NOBODY, -1, DO_SET, db), 0);
  CHECK_RC(R->rc_act, 0);
  CHECK_RC(as_user(NOBODY, NOBODY, -1, DO_REMOVE, db), 0);
  CHECK_RC(R->rc_act, 1);
  CHECK(joins(NOBODY, NOBODY, -1, db));
  CHECK(in(R->name, "~1"));
  dbpool_coord *c;
  int64_t v = 0;
  CHECK_RC(dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &c), 0);
  CHECK(in(dbpool_coord_segment_name(c), "~1"));
  CHECK_RC(dbpool_coord_get(c, DBPOOL_SETTING_MAX_CONNECTIONS, &v), 0);
  CHECK_RC(v, 10); /* removed means its settings went too */
  dbpool_coord_close(c);
  drop_segments(db);
}

/* 0640 with user:65532:--- : 65532 is in the database's group but may not
** read it. Its segment (in the database's group: it could give it that
** group) is not the pool. */
TEST(a_group_member_denied_by_the_acl_is_no_reader)
{
  const char *db = make_db("acl-deny.db", NOBODY, NOBODY, 0640);
  struct __attribute__((packed)) {
    uint32_t v;
    struct __attribute__((packed)) { uint16_t tag, perm; uint32_t id; } e[5];
  } a = {2, {{1, 6, 0xffffffffu}, {2, 0, THIRD}, {4, 4, 0xffffffffu}, {0x10, 4, 0xffffffffu},
             {0x20, 0, 0xffffffffu}}};
  REQUIRE(setxattr(db, "system.posix_acl_access", &a, sizeof a, 0) == 0);
  CHECK_RC(as_user(THIRD, THIRD, NOBODY, DO_JOIN, db), 0);
  CHECK_RC(R->rc_open, -EACCES); /* she cannot read it, so cannot join */
  CHECK(joins(NOBODY, NOBODY, -1, db));
  char path[256];
  seg_path(db, 0, path, sizeof path);
  REQUIRE(chown(path, THIRD, NOBODY) == 0); /* as if she had planted it */
  CHECK(joins(NOBODY, NOBODY, -1, db));
  CHECK(in(R->name, "~1"));
  drop_segments(db);
}

/* The owner unlinks its removed segment and makes a new pool under its
** name while another user, who skipped that segment, creates one under the
** next name: the segment's lock, held by the creator across its creation,
** keeps the two apart, and both end in one pool. */
TEST(a_removal_racing_a_creation_leaves_one_pool)
{
  const char *db = make_db("race.db", NOBODY, NOBODY, 0644);
  CHECK(joins(OTHER, OTHER, -1, db)); /* OTHER's segment */
  CHECK_RC(as_user(NOBODY, NOBODY, -1, DO_REMOVE, db), 0);
  CHECK_RC(R->rc_act, 1); /* marked: OTHER or root may unlink it */
  memset(RS, 0, sizeof *RS);
  uid_t who[2] = {NOBODY, OTHER};
  pid_t pid[2];
  for (int k = 0; k < 2; k++) {
    fflush(NULL);
    pid[k] = fork();
    REQUIRE(pid[k] >= 0);
    if (pid[k] == 0) {
      alarm(tu_sec(30));
      become(who[k], -1);
      /* NOBODY skips the removed ~0 and creates ~1, slowly; OTHER comes
      ** in while it is linking: unlinks its own ~0, and creates anew. */
      if (k == 0) {
        linkat_role = 1;
      } else {
        linkat_role = 2;
        while (!atomic_load(&RS->in_linkat)) tu_sleep_ms(1);
      }
      setenv("DBPOOL_MAX_CONNECTIONS", "1", 1);
      dbpool_coord *c;
      dbpool_holder *h;
      if (dbpool_coord_open(db, 0, &c) || dbpool_holder_new(c, &h)) _exit(1);
      RS->rc[k] = dbpool_holder_acquire(h, 0);
      snprintf(RS->name[k], sizeof RS->name[k], "%s", dbpool_coord_segment_name(c));
      atomic_fetch_add(&RS->step, 1);
      while (atomic_load(&RS->step) < 100) tu_sleep_ms(1);
      dbpool_holder_free(h);
      dbpool_coord_close(c);
      _exit(0);
    }
  }
  double end = tu_now_ms() + tu_ms(20000);
  while (atomic_load(&RS->step) < 2 && tu_now_ms() < end) tu_sleep_ms(5);
  CHECK_STR(RS->name[0], RS->name[1]);
  CHECK((RS->rc[0] == 0) + (RS->rc[1] == 0) == 1); /* max_connections = 1 */
  atomic_store(&RS->step, 100);
  for (int k = 0; k < 2; k++) CHECK_RC(tu_wait_child(pid[k], 20000), 0);
  drop_segments(db);
}

/* A reader made the pool; a long-running process of the owner has it open
** when the owner narrows the database. A new process skips the former
** reader's segment -- marking it removed, so that the old process moves
** too -- and the two never both hold a slot of a one-slot pool. */
TEST(narrowing_the_database_never_leaves_two_pools)
{
  const char *db = make_db("narrow.db", NOBODY, NOBODY, 0644);
  CHECK(joins(OTHER, OTHER, -1, db));
  memset(RS, 0, sizeof *RS);
  fflush(NULL);
  pid_t old = fork();
  REQUIRE(old >= 0);
  if (old == 0) {
    alarm(tu_sec(30));
    become(NOBODY, -1);
    setenv("DBPOOL_MAX_CONNECTIONS", "1", 1);
    dbpool_coord *c;
    dbpool_holder *h;
    if (dbpool_coord_open(db, 0, &c) || dbpool_holder_new(c, &h)) _exit(1);
    dbpool_holder_free(h);
    dbpool_coord_close(c); /* cached, as a server's between requests */
    atomic_store(&RS->step, 1);
    while (atomic_load(&RS->step) < 2) tu_sleep_ms(1);
    if (dbpool_coord_open(db, 0, &c) || dbpool_holder_new(c, &h)) _exit(1);
    RS->rc[0] = dbpool_holder_acquire(h, 0);
    snprintf(RS->name[0], sizeof RS->name[0], "%s", dbpool_coord_segment_name(c));
    atomic_store(&RS->step, 3);
    while (atomic_load(&RS->step) < 4) tu_sleep_ms(1);
    dbpool_holder_free(h);
    dbpool_coord_close(c);
    _exit(0);
  }
  while (atomic_load(&RS->step) < 1) tu_sleep_ms(1);
  REQUIRE(chmod(db, 0640) == 0); /* OTHER may no longer read it */
  pid_t fresh = fork();
  REQUIRE(fresh >= 0);
  if (fresh == 0) {
    alarm(tu_sec(30));
    become(NOBODY, -1);
    setenv("DBPOOL_MAX_CONNECTIONS", "1", 1);
    dbpool_coord *c;
    dbpool_holder *h;
    if (dbpool_coord_open(db, 0, &c) || dbpool_holder_new(c, &h)) _exit(1);
    RS->rc[1] = dbpool_holder_acquire(h, 0);
    snprintf(RS->name[1], sizeof RS->name[1], "%s", dbpool_coord_segment_name(c));
    atomic_store(&RS->step, 2);
    while (atomic_load(&RS->step) < 4) tu_sleep_ms(1);
    dbpool_holder_free(h);
    dbpool_coord_close(c);
    _exit(0);
  }
  double end = tu_now_ms() + tu_ms(20000);
  while (atomic_load(&RS->step) < 3 && tu_now_ms() < end) tu_sleep_ms(5);
  CHECK_STR(RS->name[0], RS->name[1]);
  CHECK(!(RS->rc[0] == 0 && RS->rc[1] == 0)); /* max_connections = 1 */
  atomic_store(&RS->step, 4);
  CHECK_RC(tu_wait_child(old, 20000), 0);
  CHECK_RC(tu_wait_child(fresh, 20000), 0);
  drop_segments(db);
}

/* gc by a user who cannot look the database up (a directory closed to it)
** leaves the pool and its settings alone. */
TEST(gc_changes_nothing_it_cannot_judge)
{
  char dir[300], db[400];
  snprintf(dir, sizeof dir, "%s/private", tu_dir);
  REQUIRE(mkdir(dir, 0755) == 0 && chown(dir, NOBODY, NOBODY) == 0);
  snprintf(db, sizeof db, "%s/gc.db", dir);
  int fd = open(db, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  close(fd);
  REQUIRE(chown(db, NOBODY, NOBODY) == 0);
  CHECK(joins(OTHER, OTHER, -1, db)); /* OTHER owns the segment */
  CHECK_RC(as_user(NOBODY, NOBODY, -1, DO_SET, db), 0);
  REQUIRE(chmod(dir, 0700) == 0);
  fflush(NULL);
  pid_t p = fork();
  if (p == 0) {
    become(OTHER, -1);
    _exit(dbpool_coord_gc(0, NULL, NULL) == 0 ? 0 : 1);
  }
  CHECK_RC(tu_wait_child(p, 20000), 0); /* nothing removed */
  REQUIRE(chmod(dir, 0755) == 0);
  dbpool_coord *c;
  int64_t v = 0;
  CHECK_RC(dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &c), 0);
  CHECK_RC(dbpool_coord_get(c, DBPOOL_SETTING_MAX_CONNECTIONS, &v), 0);
  CHECK_RC(v, 5);
  dbpool_coord_close(c);
  drop_segments(db);
}

int main(void)
{
  tu_init("perms");
  if (geteuid() != 0) {
    printf("skipped: perms needs root (to act as several users)\n");
    return tu_finish();
  }
  R = tu_shared(sizeof *R);
  RS = tu_shared(sizeof *RS);
  RUN(segment_mirrors_the_databases_readers);
  RUN(a_reader_first_locks_nobody_out);
  RUN(root_first_gives_the_pool_to_the_owner);
  RUN(a_group_member_first_lets_the_owner_in);
  RUN(joining_follows_read_permission);
  RUN(steering_needs_write_permission);
  RUN(the_segment_follows_chmod);
  RUN(a_planted_segment_is_skipped);
  RUN(a_former_readers_segment_is_skipped);
  RUN(the_owner_removes_a_pool_a_reader_made);
  RUN(a_group_member_denied_by_the_acl_is_no_reader);
  RUN(a_removal_racing_a_creation_leaves_one_pool);
  RUN(narrowing_the_database_never_leaves_two_pools);
  RUN(gc_changes_nothing_it_cannot_judge);
  return tu_finish();
}
