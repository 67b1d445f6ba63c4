/*
** shmfull.c -- a full /dev/shm is an error, never SIGBUS (issue 10, item 1;
** coordinator/create.c: pages are reserved before they are touched).
**
** Runs itself again inside a private mount namespace (unshare -m) with a
** 3 MiB tmpfs mounted on /dev/shm, which it fills. Skipped with a message
** where unshare or mount is not permitted.
**
** Checks:
**   - creating a pool on a full /dev/shm fails with -ENOSPC and a message
**     naming /dev/shm and its space; nothing is left under the pool's name;
**   - in a pool that exists, the holder whose record needs a new page fails
**     the same way (that is the 33rd: 32 records to a page), the others
**     keep working, and once space is freed the next one succeeds;
**   - dbpoolctl set on a full /dev/shm exits 1 with that message;
**   - a record number beyond those in use (a label asked for by number) is
**     refused, never touched: its page was never reserved.
*/
#include "testutil.h"

static int fill_fd = -1;

/* Fill /dev/shm up, leaving nothing. */
static void fill(void)
{
  fill_fd = open("/dev/shm/filler", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  REQUIRE(fill_fd >= 0);
  static char zeros[4096];
  off_t off = 0;
  while (pwrite(fill_fd, zeros, sizeof zeros, off) == (ssize_t)sizeof zeros) off += 4096;
}

static void unfill(void)
{
  close(fill_fd);
  unlink("/dev/shm/filler");
}

static int count_names(void)
{
  int n = 0;
  DIR *d = opendir("/dev/shm");
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strncmp(e->d_name, "dbpool.", 7) == 0) n++;
  if (d) closedir(d);
  return n;
}

TEST(creating_a_pool_on_a_full_dev_shm_is_an_error)
{
  const char *db = tu_db("full.db");
  fill();
  dbpool_coord *c = NULL;
  int before = count_names();
  CHECK_RC(dbpool_coord_open(db, 0, &c), -ENOSPC);
  CHECK(c == NULL);
  CHECK(strstr(dbpool_last_error(), "/dev/shm is full") != NULL);
  CHECK(strstr(dbpool_last_error(), "KiB free") != NULL);
  CHECK(strstr(dbpool_last_error(), "full.db") != NULL);
  CHECK_RC(count_names(), before);
  unfill();
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  dbpool_coord_close(c);
}

TEST(a_holder_needing_a_new_page_on_a_full_dev_shm_is_an_error)
{
  const char *db = tu_db("grow.db");
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  dbpool_holder *h[40] = {0};
  CHECK_RC(dbpool_holder_new(c, &h[0]), 0); /* reserves the first page */
  CHECK_RC(dbpool_holder_acquire(h[0], 0), 0);
  fill();
  int made = 1, rc = 0;
  while (made < 40 && (rc = dbpool_holder_new(c, &h[made])) == 0) made++;
  CHECK_RC(made, 32);
  CHECK_RC(rc, -ENOSPC);
  CHECK(strstr(dbpool_last_error(), "/dev/shm is full") != NULL);
  CHECK_RC(dbpool_holder_release(h[0]), 0); /* the others still work */
  CHECK_RC(dbpool_holder_acquire(h[1], 0), 0);
  CHECK_RC(dbpool_holder_release(h[1]), 0);
  unfill();
  CHECK_RC(dbpool_holder_new(c, &h[made]), 0);
  made++;
  for (int i = 0; i < made; i++) dbpool_holder_free(h[i]);
  dbpool_coord_close(c);
}

TEST(dbpoolctl_set_on_a_full_dev_shm_exits_1)
{
  const char *db = tu_db("ctl.db");
  char ctl[512], cmd[1024];
  snprintf(ctl, sizeof ctl, "%s/dbpoolctl", getenv("B") ? getenv("B") : "build");
  if (access(ctl, X_OK) != 0) {
    printf("   skipped: no %s\n", ctl);
    return;
  }
  snprintf(cmd, sizeof cmd, "%s set %s max_connections=3 2>%s/err", ctl, db, tu_dir);
  fill();
  int st = system(cmd);
  unfill();
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
  char path[512], msg[1024] = "";
  snprintf(path, sizeof path, "%s/err", tu_dir);
  FILE *f = fopen(path, "r");
  if (f) {
    if (!fgets(msg, sizeof msg, f)) msg[0] = 0;
    fclose(f);
  }
  CHECK(strstr(msg, "/dev/shm is full") != NULL);
}

TEST(a_record_beyond_those_in_use_is_never_touched)
{
  const char *db = tu_db("far.db");
  dbpool_coord *c;
  dbpool_holder *h;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  REQUIRE(dbpool_holder_new(c, &h) == 0);
  fill();
  char buf[64];
  CHECK_RC(dbp_coord_record_label(c, 8000, buf, sizeof buf), -EINVAL);
  CHECK_RC(dbp_coord_set_record_label(c, 8000, "x"), -EINVAL);
  CHECK_RC(dbp_coord_record_label(c, dbp_holder_record(h), buf, sizeof buf), 0);
  unfill();
  dbpool_holder_free(h);
  dbpool_coord_close(c);
}

int main(int argc, char **argv)
{
  if (argc == 2 && strcmp(argv[1], "inside") == 0) {
    tu_init("shmfull");
    RUN(creating_a_pool_on_a_full_dev_shm_is_an_error);
    RUN(a_holder_needing_a_new_page_on_a_full_dev_shm_is_an_error);
    RUN(dbpoolctl_set_on_a_full_dev_shm_exits_1);
    RUN(a_record_beyond_those_in_use_is_never_touched);
    return tu_finish();
  }
  char self[512];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 2;
  self[n] = 0;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    execlp("unshare", "unshare", "-m", "sh", "-c",
           "mount -t tmpfs -o size=3m tmpfs /dev/shm 2>/dev/null || exit 77; "
           "exec \"$0\" inside", self, (char *)NULL);
    _exit(77);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
    printf("skipped: cannot mount a small tmpfs on /dev/shm in a mount namespace\n");
    return 0;
  }
  if (WIFSIGNALED(status)) {
    printf("FAILED: killed by signal %d (SIGBUS is %d)\n", WTERMSIG(status), SIGBUS);
    return 1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
