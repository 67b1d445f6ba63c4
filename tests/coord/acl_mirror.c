/*
** acl_mirror.c -- a segment's access list mirrors its database's readers,
** named ones included (coordinator/perms.c), and trust in a segment's owner
** follows the kernel's order over a database's POSIX ACL: named user, then
** any group entry that grants (the owning group or a named one), then other.
**
** Real files with real ACLs (system.posix_acl_access, written as the kernel
** stores it); the segment's permissions are applied by a process of the
** user who made it (setresuid), as the library does when a reader who is
** not the database's owner creates a pool. Runs as root (skipped otherwise);
** uids and gids 65528-65534 play users and groups.
*/
#include <grp.h>
#include <sys/xattr.h>

#include "testutil.h"
#include "coordinator/internal.h"

#define ACL_XATTR "system.posix_acl_access"
enum { T_USER_OBJ = 1, T_USER = 2, T_GROUP_OBJ = 4, T_GROUP = 8, T_MASK = 0x10, T_OTHER = 0x20 };
#define NOID 0xffffffffu

typedef struct {
  uint16_t tag, perm;
  uint32_t id;
} ent;

static int set_acl(const char *path, const ent *e, int n)
{
  unsigned char buf[4 + 8 * 64];
  uint32_t v = 2;
  memcpy(buf, &v, 4);
  memcpy(buf + 4, e, 8 * (size_t)n);
  return setxattr(path, ACL_XATTR, buf, 4 + 8 * (size_t)n, 0);
}

static int get_acl_fd(int fd, ent *e, int cap)
{
  unsigned char buf[4 + 8 * 80];
  ssize_t n = fgetxattr(fd, ACL_XATTR, buf, sizeof buf);
  if (n < 4) return -1;
  int k = (int)((n - 4) / 8);
  if (k > cap) k = cap;
  memcpy(e, buf + 4, 8 * (size_t)k);
  return k;
}

static int find(const ent *e, int n, uint16_t tag, uint32_t id)
{
  for (int i = 0; i < n; i++)
    if (e[i].tag == tag && e[i].id == id) return e[i].perm;
  return -1;
}

static int acl_ok(const char *db)
{
  return getxattr(db, ACL_XATTR, NULL, 0) >= 0 || errno == ENODATA;
}

/* The database: nobody's (65534:65534), 0640, read by named user 65533 and
** the named group 65531 (and its own owner and group, named again); named
** user 65532 and named group 65530 are denied. */
static const char *acl_db(const char *name, int group_reads)
{
  const char *db = tu_db(name);
  REQUIRE(chown(db, 65534, 65534) == 0 && chmod(db, 0640) == 0);
  ent e[] = {{T_USER_OBJ, 6, NOID},  {T_USER, 0, 65532},  {T_USER, 4, 65533},
             {T_USER, 4, 65534},     {T_GROUP_OBJ, (uint16_t)(group_reads ? 4 : 0), NOID},
             {T_GROUP, 0, 65530},    {T_GROUP, 4, 65531}, {T_GROUP, 4, 65534},
             {T_MASK, 4, NOID},      {T_OTHER, 0, NOID}};
  if (set_acl(db, e, 10) != 0) return NULL;
  return db;
}

TEST(trust_follows_the_kernels_order_over_named_entries)
{
  if (geteuid() != 0) {
    printf("   skipped: needs root\n");
    return;
  }
  const char *db = acl_db("trust.db", 1);
  if (!db || !acl_ok(db)) {
    printf("   skipped: no POSIX ACLs in %s\n", tu_dir);
    return;
  }
  dbp_dbfile f;
  REQUIRE(dbp_dbfile_stat(db, &f) == 0);
  CHECK(dbp_perms_owner_trusted(db, &f, 0, 0));          /* root */
  CHECK(dbp_perms_owner_trusted(db, &f, 65534, 1));      /* the owner */
  CHECK(dbp_perms_owner_trusted(db, &f, 65533, 65529));  /* named user who reads */
  CHECK(!dbp_perms_owner_trusted(db, &f, 65532, 65531)); /* named and denied: groups do not count */
  CHECK(dbp_perms_owner_trusted(db, &f, 65529, 65531));  /* in a named group that reads */
  CHECK(!dbp_perms_owner_trusted(db, &f, 65529, 65530)); /* in a named group denied */
  CHECK(dbp_perms_owner_trusted(db, &f, 65529, 65534));  /* in the owning group */
  CHECK(!dbp_perms_owner_trusted(db, &f, 65529, 65528)); /* other */
  const char *closed = acl_db("trust_group_closed.db", 0);
  REQUIRE(closed && dbp_dbfile_stat(closed, &f) == 0);
  /* The owning group's entry denies, but the named entry for the same
  ** group grants: any matching group entry that grants lets it read. */
  CHECK(dbp_perms_owner_trusted(closed, &f, 65529, 65534));
  CHECK(!dbp_perms_owner_trusted(closed, &f, 65529, 65530));
}

/* As uid:gid, make a file in /dev/shm and give it db's permissions as a
** new segment; its ACL into *out (entries), its mode into *mode. */
typedef struct {
  int rc, n;
  unsigned mode;
  gid_t gid;
  ent e[80];
} applied;

static void apply_as(uid_t uid, gid_t gid, const char *db, applied *out)
{
  memset(out, 0, sizeof *out);
  out->rc = 99;
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0)
      _exit(3);
    char path[128];
    snprintf(path, sizeof path, "/dev/shm/dbpool-acl-test-%d", (int)getpid());
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) _exit(4);
    unlink(path);
    dbp_dbfile f;
    if (dbp_dbfile_stat(db, &f) != 0) _exit(5);
    out->rc = dbp_perms_apply(fd, db, &f, true);
    struct stat st;
    fstat(fd, &st);
    out->mode = st.st_mode & 07777;
    out->gid = st.st_gid;
    out->n = get_acl_fd(fd, out->e, 80);
    /* Applied again (an attach by its owner): nothing to change. */
    if (out->rc == 0) out->rc = dbp_perms_apply(fd, db, &f, false);
    close(fd);
    _exit(0);
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
}

TEST(a_readers_segment_names_the_databases_readers)
{
  if (geteuid() != 0) {
    printf("   skipped: needs root\n");
    return;
  }
  const char *db = acl_db("mirror.db", 1);
  if (!db || !acl_ok(db)) {
    printf("   skipped: no POSIX ACLs in %s\n", tu_dir);
    return;
  }
  applied *a = tu_shared(sizeof *a);
  /* 65533 (a named reader) in the named group 65531 makes the segment. */
  apply_as(65533, 65531, db, a);
  CHECK_RC(a->rc, 0);
  CHECK(a->gid == 65531 && a->mode == 0660);
  CHECK(find(a->e, a->n, T_USER_OBJ, NOID) == 6);
  CHECK(find(a->e, a->n, T_USER, 65534) == 6);    /* the database's owner */
  CHECK(find(a->e, a->n, T_USER, 65532) == 0);    /* denied stays denied */
  CHECK(find(a->e, a->n, T_USER, 65533) == -1);   /* the segment's owner: user_obj */
  CHECK(find(a->e, a->n, T_GROUP_OBJ, NOID) == 6); /* 65531 reads */
  CHECK(find(a->e, a->n, T_GROUP, 65534) == 6);   /* the database's group */
  CHECK(find(a->e, a->n, T_GROUP, 65530) == 0);
  CHECK(find(a->e, a->n, T_GROUP, 65531) == -1);  /* the segment's group: group_obj */
  CHECK(find(a->e, a->n, T_MASK, NOID) == 6 && find(a->e, a->n, T_OTHER, NOID) == 0);
  /* The owning group may not read: it is not named on the segment. */
  const char *closed = acl_db("mirror_group_closed.db", 0);
  REQUIRE(closed);
  apply_as(65533, 65528, closed, a);
  CHECK_RC(a->rc, 0);
  CHECK(find(a->e, a->n, T_GROUP, 65534) == -1);
  CHECK(find(a->e, a->n, T_GROUP_OBJ, NOID) == 0); /* 65528 is other: denied */
  CHECK(find(a->e, a->n, T_USER, 65534) == 6);
  munmap(a, sizeof *a);
}

TEST(a_database_with_the_most_named_readers_still_gets_a_whole_segment_acl)
{
  if (geteuid() != 0) {
    printf("   skipped: needs root\n");
    return;
  }
  /* 60 named users: with its four base entries, the most an ACL read into
  ** 64 entries holds. A reader who is not the owner makes the segment: it
  ** names the owner and the owning group too, 66 entries in all. */
  const char *db = tu_db("crowded_acl.db");
  REQUIRE(chown(db, 65534, 65534) == 0 && chmod(db, 0644) == 0);
  ent e[64];
  int n = 0;
  e[n++] = (ent){T_USER_OBJ, 6, NOID};
  for (uint32_t u = 0; u < 60; u++) e[n++] = (ent){T_USER, 4, 70000 + u};
  e[n++] = (ent){T_GROUP_OBJ, 4, NOID};
  e[n++] = (ent){T_MASK, 4, NOID};
  e[n++] = (ent){T_OTHER, 4, NOID};
  if (set_acl(db, e, n) != 0) {
    printf("   skipped: cannot set a 64-entry ACL in %s (%s)\n", tu_dir, strerror(errno));
    return;
  }
  applied *a = tu_shared(sizeof *a);
  apply_as(65533, 65528, db, a);
  CHECK_RC(a->rc, 0);
  CHECK(a->n == 66);
  CHECK(find(a->e, a->n, T_USER, 65534) == 6 && find(a->e, a->n, T_GROUP, 65534) == 6);
  CHECK(find(a->e, a->n, T_USER, 70059) == 6);
  CHECK(find(a->e, a->n, T_MASK, NOID) == 6 && find(a->e, a->n, T_OTHER, NOID) == 6);
  munmap(a, sizeof *a);
}

int main(void)
{
  tu_init("acl_mirror");
  RUN(trust_follows_the_kernels_order_over_named_entries);
  RUN(a_readers_segment_names_the_databases_readers);
  RUN(a_database_with_the_most_named_readers_still_gets_a_whole_segment_acl);
  return tu_finish();
}
