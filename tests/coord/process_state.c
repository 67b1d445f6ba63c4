/*
** process_state.c -- how a live holder's process is shown
** (dbp_process_state, liveness.c): "stopped" while stopped by a signal or
** held in a tracing stop (a debugger), "elsewhere" when its pid cannot be
** looked up here (another pid namespace, or a pid that is no pid).
*/
#include <sys/ptrace.h>

#include "testutil.h"
#include "coordinator/internal.h"

static int state_of(dbpool_coord *c, pid_t pid)
{
  dbpool_holder_info info[4];
  int n = dbpool_coord_holders(c, info, 4, sizeof *info);
  for (int i = 0; i < n && i < 4; i++)
    if (info[i].pid == pid) return (int)info[i].process_state;
  return -1;
}

TEST(a_traced_process_is_shown_stopped)
{
  const char *db = tu_db("traced.db");
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    tu_child_take_slot(db, "traced");
    if (write(ready[1], "r", 1) != 1) _exit(3);
    for (;;) pause();
  }
  close(ready[1]);
  char b;
  REQUIRE(read(ready[0], &b, 1) == 1);
  close(ready[0]);
  CHECK(state_of(c, pid) == DBPOOL_PROCESS_RUNNING);
  /* A tracing stop ('t' in /proc/PID/stat). */
  REQUIRE(ptrace(PTRACE_SEIZE, pid, 0, 0) == 0);
  REQUIRE(ptrace(PTRACE_INTERRUPT, pid, 0, 0) == 0);
  int status;
  REQUIRE(waitpid(pid, &status, __WALL) == pid && WIFSTOPPED(status));
  CHECK(state_of(c, pid) == DBPOOL_PROCESS_STOPPED);
  CHECK(ptrace(PTRACE_DETACH, pid, 0, 0) == 0);
  CHECK(state_of(c, pid) == DBPOOL_PROCESS_RUNNING);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  dbpool_coord_close(c);
}

TEST(a_pid_that_is_no_pid_is_elsewhere)
{
  tu_pool p = tu_pool_open("nopid.db", 2, 1, 1);
  dbp_process *pr = &p.c->procs[p.c->proc_idx];
  CHECK(state_of(p.c, getpid()) == DBPOOL_PROCESS_RUNNING);
  atomic_store(&pr->pid, -7); /* garbage */
  dbpool_holder_info info[2];
  CHECK_RC(dbpool_coord_holders(p.c, info, 2, sizeof *info), 1);
  CHECK(info[0].process_state == DBPOOL_PROCESS_ELSEWHERE);
  atomic_store(&pr->pid, getpid());
  tu_pool_close(&p);
}

int main(void)
{
  tu_init("procstate");
  RUN(a_traced_process_is_shown_stopped);
  RUN(a_pid_that_is_no_pid_is_elsewhere);
  return tu_finish();
}
