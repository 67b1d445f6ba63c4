/*
** fork_child.c -- what the library's fork handler does in the child
** (coordinator/identity.c, registry.c; docs/protocol.md "fork()"): the
** child finds the registry usable (its lock released), its parent's holder
** refused (-EPERM) without touching the parent's slot, and registers as
** itself when it makes its own holder.
**
** fork() is called here through a pointer, as a program not built for
** coverage calls it: gcc --coverage turns a direct call into __gcov_fork(),
** which clears the child's counters after the fork handlers ran, so the
** child half of the handler would never be counted. The behaviour checked
** is the same either way.
*/
#include "testutil.h"

static pid_t (*volatile plain_fork)(void) = fork;

TEST(a_forked_child_registers_as_itself_and_leaves_its_parents_slot_alone)
{
  tu_pool p = tu_pool_open("fork_child.db", 4, 1, 1);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  pid_t pid = plain_fork();
  if (pid == 0) {
    CCHECK(dbpool_holder_release(p.h[0]) == -EPERM); /* the parent's */
    dbpool_coord *c;
    dbpool_holder *h;
    CCHECK(dbpool_coord_open(p.db, 0, &c) == 0);
    CCHECK(dbpool_holder_new(c, &h) == 0 && dbpool_holder_acquire(h, 0) == 0);
    dbpool_host_stats cs;
    DBPOOL_INIT(&cs);
    CCHECK(dbpool_coord_stats(c, &cs) == 0 && cs.active == 2 && cs.processes == 2);
    dbpool_holder_free(h);
    dbpool_coord_close(c);
    CHILD_EXIT();
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  CHECK_RC(dbpool_coord_stats(p.c, &st), 0);
  CHECK(st.active == 1); /* ours, still held */
  CHECK_RC(dbpool_holder_release(p.h[0]), 0);
  tu_pool_close(&p);
}

int main(void)
{
  tu_init("fork_child");
  RUN(a_forked_child_registers_as_itself_and_leaves_its_parents_slot_alone);
  return tu_finish();
}
