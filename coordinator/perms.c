/*
** perms.c -- a segment is open to exactly those who can read its database.
**
** Every connection counts, read-only ones too, so every user who can read
** the database must be able to write its segment; nobody else may open it.
** The segment mirrors the database's readers: each class (owner, group,
** other, and the named users and groups of the database's POSIX ACL) that
** can read the database gets read-write access to the segment. When the
** segment's owner or group is not the database's -- a reader who is not the
** owner created the pool -- named ACL entries give the database's owner and
** group their access (tmpfs supports POSIX ACLs on common kernels; where it
** does not, the segment is opened to other users instead, and
** docs/operations.md says so). Root creating a pool gives it to the
** database's owner and group, as SQLite does with its -shm file, so running
** as root never locks the owner out.
**
** The segment's owner or root re-applies this whenever it attaches, so the
** segment follows chmod and chown of the database. Anyone else attaches to a
** segment whose owner could read the database (dbp_perms_owner_trusted):
** one planted by a user who cannot read the database, or left by one who no
** longer can, is skipped (naming.c).
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "internal.h"

#define ACL_XATTR "system.posix_acl_access"
#define ACL_VERSION 2u
enum { TAG_USER_OBJ = 1, TAG_USER = 2, TAG_GROUP_OBJ = 4, TAG_GROUP = 8,
       TAG_MASK = 0x10, TAG_OTHER = 0x20 };
#define ACL_NO_ID 0xffffffffu
#define ACL_MAX 64 /* entries read from a database's ACL */
/* A segment's: the database's named entries (at most ACL_MAX), its owner
** and group named too, and the four base entries. */
#define ACL_WANT_MAX (ACL_MAX + 6)
#define P_R 4u
#define P_RW 6u

typedef struct acl_entry {
  uint16_t tag, perm;
  uint32_t id;
} acl_entry;

typedef struct acl {
  unsigned n;
  acl_entry e[ACL_WANT_MAX];
} acl;

/* Who can read the database: its mode plus the named entries of its ACL
** (each masked). Named entries that deny are kept too: for the kernel a
** named user entry decides alone, whatever the groups say. */
typedef struct readers {
  bool owner, group, other;
  unsigned nu, ng;
  uint32_t users[ACL_MAX], groups[ACL_MAX];
  bool user_reads[ACL_MAX], group_reads[ACL_MAX];
} readers;

static int acl_decode(const unsigned char *buf, ssize_t n, acl *out)
{
  uint32_t v;
  out->n = 0;
  /* The kernel writes this attribute itself (posix_acl_to_xattr): version 2
  ** and whole entries; the caller's buffer holds at most ACL_MAX. */
  if (n < 4 || (n - 4) % 8 != 0) return -1; /* GCOVR_EXCL_BR_LINE: see above */
  memcpy(&v, buf, 4);
  if (v != ACL_VERSION) return -1; /* GCOVR_EXCL_BR_LINE: see above */
  for (ssize_t off = 4; off < n; off += 8) {
    acl_entry *e = &out->e[out->n++];
    memcpy(&e->tag, buf + off, 2);
    memcpy(&e->perm, buf + off + 2, 2);
    memcpy(&e->id, buf + off + 4, 4);
  }
  return 0;
}

static readers readers_of(const char *db_path, const dbp_dbfile *db)
{
  readers r = {.owner = (db->mode & 0400) != 0, .group = (db->mode & 040) != 0,
               .other = (db->mode & 04) != 0};
  unsigned char buf[4 + 8 * ACL_MAX];
  acl a;
  ssize_t n = db_path ? getxattr(db_path, ACL_XATTR, buf, sizeof buf) : -1;
  if (n <= 0) return r; /* none (over ACL_MAX entries, ERANGE: the mode only) */
  if (acl_decode(buf, n, &a) != 0) return r; /* GCOVR_EXCL_BR_LINE: see acl_decode */
  unsigned mask = 7, group_obj = 0;
  for (unsigned i = 0; i < a.n; i++)
    if (a.e[i].tag == TAG_MASK) mask = a.e[i].perm;
  for (unsigned i = 0; i < a.n; i++) {
    const acl_entry *e = &a.e[i];
    bool rd = (e->perm & mask & P_R) != 0;
    if (e->tag == TAG_GROUP_OBJ) {
      group_obj = e->perm;
    } else if (e->tag == TAG_USER) {
      r.user_reads[r.nu] = rd;
      r.users[r.nu++] = e->id;
    } else if (e->tag == TAG_GROUP) {
      r.group_reads[r.ng] = rd;
      r.groups[r.ng++] = e->id;
    }
  }
  r.group = (group_obj & mask & P_R) != 0;
  return r;
}

static int find_id(const uint32_t *ids, unsigned n, uint32_t id)
{
  for (unsigned i = 0; i < n; i++)
    if (ids[i] == id) return (int)i;
  return -1;
}

/* May a process of uid, known to be in group gid, read the database? The
** kernel's order: (root, owner,) named user, then the groups (any matching entry
** that grants), then other. We know one group of the segment's owner: the
** segment's, which it could only have given the segment as a member. */
static bool can_read(const readers *r, const dbp_dbfile *db, uid_t uid, gid_t gid)
{
  /* (root and the database's owner: dbp_perms_owner_trusted answered) */
  int u = find_id(r->users, r->nu, uid);
  if (u >= 0) return r->user_reads[u];
  bool matched = false, granted = false;
  if (gid == db->gid) {
    matched = true;
    granted = r->group;
  }
  int g = find_id(r->groups, r->ng, gid);
  if (g >= 0) {
    matched = true;
    granted = granted || r->group_reads[g];
  }
  return matched ? granted : r->other;
}

bool dbp_perms_owner_trusted(const char *db_path, const dbp_dbfile *db,
                             uid_t seg_uid, gid_t seg_gid)
{
  if (seg_uid == 0 || seg_uid == db->uid) return true;
  readers r = readers_of(db_path, db);
  return can_read(&r, db, seg_uid, seg_gid);
}

static void add(acl *a, uint16_t tag, uint16_t perm, uint32_t id)
{
  a->e[a->n++] = (acl_entry){tag, perm, id}; /* at most ACL_WANT_MAX: wanted_acl */
}

static int by_tag_id(const void *x, const void *y)
{
  const acl_entry *a = x, *b = y;
  if (a->tag != b->tag) return a->tag < b->tag ? -1 : 1;
  return a->id < b->id ? -1 : a->id > b->id;
}

/* The segment's ACL for a segment owned by seg_uid:seg_gid; returns the
** number of named entries (0: the mode alone says it). */
static unsigned wanted_acl(const readers *r, const dbp_dbfile *db, uid_t seg_uid,
                           gid_t seg_gid, acl *a)
{
  a->n = 0;
  unsigned named = 0;
  add(a, TAG_USER_OBJ, P_RW, ACL_NO_ID);
  if (seg_uid != db->uid) add(a, TAG_USER, P_RW, db->uid), named++;
  for (unsigned i = 0; i < r->nu; i++)
    if (r->users[i] != seg_uid && r->users[i] != db->uid)
      add(a, TAG_USER, r->user_reads[i] ? P_RW : 0, r->users[i]), named++;
  /* Members of a group that is not the database's are, to the database,
  ** others. */
  int gi = find_id(r->groups, r->ng, seg_gid);
  bool group_obj = seg_gid == db->gid ? r->group : gi >= 0 ? r->group_reads[gi] : r->other;
  add(a, TAG_GROUP_OBJ, group_obj ? P_RW : 0, ACL_NO_ID);
  if (seg_gid != db->gid && r->group) add(a, TAG_GROUP, P_RW, db->gid), named++;
  for (unsigned i = 0; i < r->ng; i++)
    if (r->groups[i] != seg_gid && r->groups[i] != db->gid)
      add(a, TAG_GROUP, r->group_reads[i] ? P_RW : 0, r->groups[i]), named++;
  if (named) add(a, TAG_MASK, P_RW, ACL_NO_ID);
  add(a, TAG_OTHER, r->other ? P_RW : 0, ACL_NO_ID);
  qsort(a->e, a->n, sizeof a->e[0], by_tag_id);
  return named;
}

static size_t acl_encode(const acl *a, unsigned char *buf)
{
  uint32_t v = ACL_VERSION;
  memcpy(buf, &v, 4);
  for (unsigned i = 0; i < a->n; i++) {
    memcpy(buf + 4 + 8 * i, &a->e[i].tag, 2);
    memcpy(buf + 6 + 8 * i, &a->e[i].perm, 2);
    memcpy(buf + 8 + 8 * i, &a->e[i].id, 4);
  }
  return 4 + 8 * (size_t)a->n;
}

static mode_t mode_of(const acl *a, unsigned named)
{
  mode_t m = 0;
  for (unsigned i = 0; i < a->n; i++) {
    const acl_entry *e = &a->e[i];
    if (e->tag == TAG_USER_OBJ) m |= (mode_t)e->perm << 6;
    if (e->tag == (named ? TAG_MASK : TAG_GROUP_OBJ)) m |= (mode_t)e->perm << 3;
    if (e->tag == TAG_OTHER) m |= e->perm;
  }
  return m;
}

/* Give fd (a segment of the database db) the permissions above. When
** creating, as root, give it to the database's owner and group; otherwise
** put it in the database's group if we may. Only the segment's owner or
** root calls this. Returns 0 or -errno (with a message). */
int dbp_perms_apply(int fd, const char *db_path, const dbp_dbfile *db,
                    bool creating)
{
  struct stat st;
  if (geteuid() == 0 && fchown(fd, db->uid, db->gid) != 0)
    return dbp_err(-errno, "dbpool: cannot give the pool segment of %s to the "
                   "database's owner: %s", db_path, strerror(errno));
  if (fstat(fd, &st) != 0)
    return dbp_err(-errno, "dbpool: cannot stat the pool segment of %s: %s",
                   db_path, strerror(errno));
  if (creating && st.st_gid != db->gid && fchown(fd, (uid_t)-1, db->gid) == 0)
    st.st_gid = db->gid; /* we are a member: the group's access is plain */

  readers r = readers_of(db_path, db);
  acl a;
  unsigned named = wanted_acl(&r, db, st.st_uid, st.st_gid, &a);
  unsigned char want[4 + 8 * ACL_WANT_MAX], have[4 + 8 * ACL_WANT_MAX];
  size_t wn = acl_encode(&a, want);
  ssize_t hn = fgetxattr(fd, ACL_XATTR, have, sizeof have);
  mode_t mode = mode_of(&a, named);
  if (!named) {
    if (hn > 0) fremovexattr(fd, ACL_XATTR);
    if ((st.st_mode & 07777) != mode && fchmod(fd, mode) != 0)
      return dbp_err(-errno, "dbpool: cannot set the mode of the pool segment "
                     "of %s: %s", db_path, strerror(errno));
    return 0;
  }
  if (hn == (ssize_t)wn && memcmp(have, want, wn) == 0 &&
      (st.st_mode & 07777) == mode)
    return 0;
  if (fsetxattr(fd, ACL_XATTR, want, wn, 0) == 0) return 0;
  if (errno != EOPNOTSUPP && errno != ENOTSUP)
    return dbp_err(-errno, "dbpool: cannot set the access list of the pool "
                   "segment of %s: %s", db_path, strerror(errno));
  /* No ACLs on this /dev/shm: the database's owner and group must still get
  ** in, so others get in too (docs/operations.md). */
  if (fchmod(fd, 0666) != 0)
    return dbp_err(-errno, "dbpool: cannot set the mode of the pool segment "
                   "of %s: %s", db_path, strerror(errno));
  return 0;
}
