/*
** shm_mounts.c -- creating a pool when /dev/shm or /proc is not the usual
** tmpfs: full (no inode left to make the segment, or to link it), read-only,
** without POSIX ACLs (ramfs), a file-size limit below the segment's size,
** and no /proc (a chroot or sandbox: the segment is linked without
** /proc/self/fd, the process is named from its program name).
**
** Each case runs in a forked child, as root, in a mount namespace of its
** own (unshare(CLONE_NEWNS)) where the odd file system is mounted over
** /dev/shm or /proc: nothing outside the child sees it, and what the child
** creates there disappears with it. Skipped (saying why) when not root or
** when mount namespaces are not available.
*/
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/xattr.h>

#include "testutil.h"

#define SKIP 77

/* In a child with a private mount namespace: setup(arg) mounts what the
** case needs, then body(db) checks (CCHECK). Returns the child's status. */
static int in_namespace(int (*setup)(const char *), const char *arg,
                        void (*body)(const char *db), const char *db)
{
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(60);
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
      printf("   skipped: no mount namespace here (%s)\n", strerror(errno));
      _exit(SKIP);
    }
    if (setup(arg) != 0) {
      printf("   skipped: cannot mount %s (%s)\n", arg, strerror(errno));
      _exit(SKIP);
    }
    body(db);
    CHILD_EXIT();
  }
  int st = tu_wait_child(pid, 60000);
  return st == SKIP ? 0 : st;
}

static int shm_tmpfs(const char *opts) { return mount("none", "/dev/shm", "tmpfs", 0, opts); }
static int shm_tmpfs_ro(const char *opts)
{
  return mount("none", "/dev/shm", "tmpfs", MS_RDONLY, opts);
}
static int shm_ramfs(const char *opts) { return mount("none", "/dev/shm", "ramfs", 0, opts); }

static int has(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* --------------------------------------------------------- /dev/shm full */

static void refused_full_create(const char *db)
{
  dbpool_coord *c = NULL;
  CCHECK(dbpool_coord_open(db, 0, &c) == -ENOSPC);
  CCHECK(has(dbpool_last_error(), "/dev/shm is full: cannot create a segment"));
  CCHECK(c == NULL);
}

TEST(no_inode_left_in_shm_refuses_a_new_pool_saying_so)
{
  CHECK(in_namespace(shm_tmpfs, "nr_inodes=1,mode=1777", refused_full_create,
                     tu_db("full_inodes.db")) == 0);
}

static void refused_read_only(const char *db)
{
  dbpool_coord *c = NULL;
  CCHECK(dbpool_coord_open(db, 0, &c) == -EROFS);
  CCHECK(has(dbpool_last_error(), "cannot create a pool segment in /dev/shm"));
  CCHECK(has(dbpool_last_error(), strerror(EROFS)));
}

TEST(a_read_only_shm_refuses_a_new_pool_saying_so)
{
  CHECK(in_namespace(shm_tmpfs_ro, "mode=1777", refused_read_only, tu_db("ro_shm.db")) == 0);
}

/* ------------------------------------------------------ file-size limit */

static int no_setup(const char *arg)
{
  (void)arg;
  return 0;
}

static void refused_fsize(const char *db)
{
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit rl = {4096, 4096};
  CCHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
  dbpool_coord *c = NULL;
  CCHECK(dbpool_coord_open(db, 0, &c) == -EFBIG);
  CCHECK(has(dbpool_last_error(), "cannot size the pool segment for"));
  CCHECK(c == NULL);
}

TEST(a_file_size_limit_below_the_segment_refuses_a_new_pool)
{
  CHECK(in_namespace(shm_tmpfs, "mode=1777", refused_fsize, tu_db("fsize.db")) == 0);
}

/* ------------------------------------------------- address-space limit */

static long vm_size_kib(void)
{
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %ld kB", &kib) == 1) break;
  if (f) fclose(f);
  return kib;
}

static void refused_address_space(const char *db)
{
  long kib = vm_size_kib();
  CCHECK(kib > 0);
  /* Room for small allocations, not for a segment (over 1 MiB). */
  struct rlimit rl = {(rlim_t)(kib + 512) * 1024, (rlim_t)(kib + 512) * 1024};
  CCHECK(setrlimit(RLIMIT_AS, &rl) == 0);
  dbpool_coord *c = NULL;
  CCHECK(dbpool_coord_open(db, 0, &c) == -ENOMEM);
  CCHECK(has(dbpool_last_error(), "cannot map a new pool segment"));
}

TEST(no_address_space_for_a_new_segment_is_an_error_saying_so)
{
  CHECK(in_namespace(no_setup, "nothing", refused_address_space, tu_db("as_limit.db")) == 0);
}

/* ------------------------------------------------------------- no ACLs */

static void opened_to_others_without_acls(const char *db)
{
  dbpool_coord *c = NULL;
  CCHECK(dbpool_coord_open(db, 0, &c) == 0);
  if (!c) return;
  char path[256];
  snprintf(path, sizeof path, "/dev/shm%s", dbpool_coord_segment_name(c));
  struct stat st;
  CCHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0666);
  dbpool_holder *h = NULL;
  CCHECK(dbpool_holder_new(c, &h) == 0 && dbpool_holder_acquire(h, 0) == 0);
  dbpool_holder_free(h);
  dbpool_coord_close(c);
}

TEST(without_acl_support_the_segment_is_opened_to_others)
{
  /* A 0640 database that a named ACL entry lets user 65533 read: the
  ** segment needs that named entry, which ramfs cannot keep. */
  const char *db = tu_db("no_acl.db");
  REQUIRE(chmod(db, 0640) == 0);
  unsigned char acl[4 + 5 * 8];
  uint32_t v = 2;
  memcpy(acl, &v, 4);
  struct { uint16_t tag, perm; uint32_t id; } e[5] = {
      {1, 6, 0xffffffffu}, {2, 4, 65533}, {4, 4, 0xffffffffu}, {0x10, 4, 0xffffffffu},
      {0x20, 0, 0xffffffffu}};
  memcpy(acl + 4, e, sizeof e);
  if (setxattr(db, "system.posix_acl_access", acl, sizeof acl, 0) != 0) {
    printf("   skipped: no ACLs on %s (%s)\n", tu_dir, strerror(errno));
    return;
  }
  CHECK(in_namespace(shm_ramfs, "mode=1777", opened_to_others_without_acls, db) == 0);
}

/* ---------------------------------------------------------------- /proc */

static int proc_empty(const char *arg)
{
  (void)arg;
  return mount("none", "/proc", "tmpfs", 0, "mode=0555");
}

/* /proc with only self/comm, made as arg says: "dir" (a read fails),
** "empty", or the text to put there (no newline). */
static int proc_fake_comm(const char *arg)
{
  if (mount("none", "/proc", "tmpfs", 0, "mode=0755") != 0 || mkdir("/proc/self", 0755) != 0)
    return -1;
  if (strcmp(arg, "dir") == 0) return mkdir("/proc/self/comm", 0755);
  int fd = open("/proc/self/comm", O_CREAT | O_WRONLY, 0644);
  if (fd < 0) return -1;
  ssize_t n = strcmp(arg, "empty") == 0 ? 0 : (ssize_t)strlen(arg);
  int ok = write(fd, arg, (size_t)n) == n;
  close(fd);
  return ok ? 0 : -1;
}

static const char *expect_name;

static void joins_named(const char *db)
{
  dbpool_coord *c = NULL;
  dbpool_holder *h = NULL;
  CCHECK(dbpool_coord_open(db, 0, &c) == 0); /* linked without /proc/self/fd */
  if (!c) return;
  CCHECK(dbpool_holder_new(c, &h) == 0 && dbpool_holder_acquire(h, 0) == 0);
  dbpool_holder_info info[4];
  int n = dbpool_coord_holders(c, info, 4, sizeof info[0]);
  CCHECK(n == 1);
  if (n == 1) {
    CCHECK(strcmp(info[0].process, expect_name) == 0);
    if (strcmp(info[0].process, expect_name) != 0)
      fprintf(stderr, "   named \"%s\", want \"%s\"\n", info[0].process, expect_name);
  }
  dbpool_holder_free(h);
  dbpool_coord_close(c);
}

TEST(without_proc_a_pool_is_made_and_a_process_named_by_its_program)
{
  extern char *program_invocation_short_name;
  expect_name = program_invocation_short_name;
  CHECK(in_namespace(proc_empty, "empty /proc", joins_named, tu_db("noproc.db")) == 0);
  CHECK(in_namespace(proc_fake_comm, "dir", joins_named, tu_db("comm_dir.db")) == 0);
  CHECK(in_namespace(proc_fake_comm, "empty", joins_named, tu_db("comm_empty.db")) == 0);
  expect_name = "worker-7";
  CHECK(in_namespace(proc_fake_comm, "worker-7", joins_named, tu_db("comm_raw.db")) == 0);
}

int main(void)
{
  tu_init("shm_mounts");
  RUN(no_inode_left_in_shm_refuses_a_new_pool_saying_so);
  RUN(a_read_only_shm_refuses_a_new_pool_saying_so);
  RUN(a_file_size_limit_below_the_segment_refuses_a_new_pool);
  RUN(no_address_space_for_a_new_segment_is_an_error_saying_so);
  RUN(without_acl_support_the_segment_is_opened_to_others);
  RUN(without_proc_a_pool_is_made_and_a_process_named_by_its_program);
  return tu_finish();
}
