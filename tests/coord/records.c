/*
** records.c -- holder-record exhaustion is visible: dbpool_coord_stats
** counts the records in use (records_in_use of records_max), and when none
** is free, dbpool_holder_new's message names the processes that use the
** most, with their counts. Two processes (this one and a child) share a
** pool's 8191 records.
*/
#include "testutil.h"

#define CHILD_RECORDS 3000

TEST(exhausted_records_show_in_stats_and_name_their_users)
{
  const char *db = tu_db("records.db");
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.records_in_use == 0 && st.records_max == 8191);

  /* A child takes CHILD_RECORDS records and keeps them until told. */
  int go[2], done[2];
  REQUIRE(pipe(go) == 0 && pipe(done) == 0);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    alarm(tu_sec(60));
    dbpool_coord *cc;
    dbpool_holder *h;
    if (dbpool_coord_open(db, 0, &cc) != 0) _exit(3);
    for (int i = 0; i < CHILD_RECORDS; i++)
      if (dbpool_holder_new(cc, &h) != 0) _exit(4);
    char b = 1;
    if (write(done[1], &b, 1) != 1 || read(go[0], &b, 1) != 1) _exit(5);
    _exit(0); /* its records are reclaimed once it is gone */
  }
  char b;
  REQUIRE(read(done[0], &b, 1) == 1);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK_RC(st.records_in_use, CHILD_RECORDS);

  /* This process takes the rest. */
  static dbpool_holder *mine[8191];
  int n = 0, rc = 0;
  while (n < 8191 && (rc = dbpool_holder_new(c, &mine[n])) == 0) n++;
  CHECK_RC(rc, -ENOSPC);
  CHECK_RC(n, 8191 - CHILD_RECORDS);
  /* The processes' names, as the kernel has them: "records", or under
  ** valgrind its tool's ("memcheck-amd64-"); the child's is ours (fork). */
  char comm[32] = "records";
  FILE *f = fopen("/proc/self/comm", "r");
  if (f) {
    if (fgets(comm, sizeof comm, f)) comm[strcspn(comm, "\n")] = 0;
    fclose(f);
  }
  char want[256];
  snprintf(want, sizeof want, "(8191 in use; most by pid %d (%s): %d, pid %d "
           "(%s): %d)", (int)getpid(), comm, n, (int)child, comm, CHILD_RECORDS);
  CHECK(strstr(dbpool_last_error(), want) != NULL);
  if (!strstr(dbpool_last_error(), want))
    fprintf(stderr, "  got: %s\n  want: ...%s\n", dbpool_last_error(), want);
  CHECK(strstr(dbpool_last_error(), "has no free holder record") != NULL);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK_RC(st.records_in_use, 8191);
  CHECK(st.active == 0 && st.waiting == 0); /* what 0.1.0 showed: all is well */

  /* Records come back: freed holders, and a dead process's. */
  for (int i = 0; i < 100; i++) dbpool_holder_free(mine[--n]);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK_RC(st.records_in_use, 8091);
  REQUIRE(write(go[1], &b, 1) == 1);
  CHECK_RC(tu_wait_child(child, 20000), 0);
  CHECK(dbpool_coord_reap(c) >= 0);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK_RC(st.records_in_use, n);
  while (n > 0) dbpool_holder_free(mine[--n]);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK_RC(st.records_in_use, 0);
  close(go[0]);
  close(go[1]);
  close(done[0]);
  close(done[1]);
  dbpool_coord_close(c);
}

int main(void)
{
  tu_init("records");
  RUN(exhausted_records_show_in_stats_and_name_their_users);
  return tu_finish();
}
