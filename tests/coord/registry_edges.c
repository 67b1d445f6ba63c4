/*
** registry_edges.c -- this process's attachments and holders
** (coordinator/registry.c) at their edges:
**
** - labels are cut at DBPOOL_LABEL_MAX - 1 bytes on a UTF-8 character
**   boundary, never inside a character;
** - record labels (dbp_coord_set_record_label / dbp_coord_record_label)
**   refuse records that are not there, not this process's, or a read-only
**   attachment, and cut to the buffer;
** - an attachment is per namespace: the same database under another
**   DBPOOL_NAMESPACE is another pool;
** - an attachment made by segment name serves opens by path too;
** - a cached attachment follows a chmod of the database (it stays the pool);
** - a free-list head that is garbage is not trusted; a table whose
**   high-water mark is at the end is searched for a free record;
** - a handle inherited across fork() whose pool is gone since fails
**   holder_new with -ENOENT; a holder inherited is not the child's to mark
**   idle or label;
** - the fork handler (base/identity.c) gives the child its own pid and a new
**   fork generation, and closes the descriptors inherited with the
**   parent's attachments (registry.c), even when fork() is called through
**   a pointer (as an application may, or a language runtime);
** - rejoining a removed pool (dbp_holder_rejoin) does nothing for a holder
**   that is not in a removed pool, and fails cleanly when the database is
**   gone.
*/
#include <pthread.h>

#include "testutil.h"
#include "coordinator/internal.h"

static void holder_label(dbpool_coord *c, dbpool_holder *h, char *out, size_t cap)
{
  dbpool_holder_info info[8];
  int n = dbpool_coord_holders(c, info, 8, sizeof *info);
  out[0] = 0;
  for (int i = 0; i < n && i < 8; i++)
    if (info[i].record == dbp_holder_record(h)) snprintf(out, cap, "%s", info[i].label);
}

TEST(labels_are_cut_on_a_character_boundary)
{
  tu_pool p = tu_pool_open("labels.db", 2, 1, 1);
  char label[DBPOOL_LABEL_MAX + 8], got[DBPOOL_LABEL_MAX];
  const int L = DBPOOL_LABEL_MAX;
  /* L-2 ASCII bytes and a 2-byte character: L bytes, cut to L-2. */
  memset(label, 'a', L - 2);
  memcpy(label + L - 2, "\xc3\xa9", 3);
  CHECK_RC(dbpool_holder_set_label(p.h[0], label), 0);
  holder_label(p.c, p.h[0], got, sizeof got);
  CHECK(strlen(got) == (size_t)L - 2 && got[L - 3] == 'a');
  /* Continuation bytes only (not UTF-8): nothing is left. */
  memset(label, 0x80, DBPOOL_LABEL_MAX + 4);
  label[DBPOOL_LABEL_MAX + 4] = 0;
  CHECK_RC(dbpool_holder_set_label(p.h[0], label), 0);
  holder_label(p.c, p.h[0], got, sizeof got);
  CHECK_STR(got, "");
  /* Exactly L-1 bytes fit. */
  memset(label, 'b', L - 1);
  label[L - 1] = 0;
  CHECK_RC(dbpool_holder_set_label(p.h[0], label), 0);
  holder_label(p.c, p.h[0], got, sizeof got);
  CHECK_STR(got, label);
  tu_pool_close(&p);
}

TEST(record_labels_check_the_record)
{
  tu_pool p = tu_pool_open("reclabel.db", 2, 2, 0);
  unsigned r = dbp_holder_record(p.h[0]);
  char buf[DBPOOL_LABEL_MAX];
  CHECK_RC(dbp_coord_set_record_label(p.c, r, "mine"), 0);
  CHECK_RC(dbp_coord_record_label(p.c, r, buf, sizeof buf), 0);
  CHECK_STR(buf, "mine");
  CHECK_RC(dbp_coord_record_label(p.c, r, buf, 3), 0); /* cut to the buffer */
  CHECK_STR(buf, "mi");
  CHECK_RC(dbp_coord_set_record_label(NULL, r, "x"), -EINVAL);
  CHECK_RC(dbp_coord_set_record_label(p.c, DBP_RECORDS, "x"), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "no record 8191") != NULL);
  CHECK_RC(dbp_coord_set_record_label(p.c, dbp_record_hwm(p.c->hdr), "x"), -EINVAL);
  CHECK_RC(dbp_coord_record_label(p.c, r, NULL, 8), -EINVAL);
  CHECK_RC(dbp_coord_record_label(p.c, r, buf, 0), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "record_label: no buffer") != NULL);
  strcpy(buf, "x");
  CHECK_RC(dbp_coord_record_label(NULL, r, buf, sizeof buf), -EINVAL);
  CHECK_STR(buf, "");
  CHECK_RC(dbp_coord_record_label(p.c, 9000, buf, sizeof buf), -EINVAL);

  /* Not this process's: unowned, owned by a process record out of the
  ** table, by another pid, by this pid in another pid namespace. */
  dbp_record *rec = &p.c->recs[r];
  uint32_t owner = atomic_load(&rec->owner);
  dbp_process *pr = &p.c->procs[owner - 1];
  atomic_store(&rec->owner, 0);
  CHECK_RC(dbp_coord_set_record_label(p.c, r, "x"), -EPERM);
  CHECK(strstr(dbpool_last_error(), "is not held by this process") != NULL);
  atomic_store(&rec->owner, dbp_process_hwm(p.c->hdr) + 1);
  CHECK_RC(dbp_coord_set_record_label(p.c, r, "x"), -EPERM);
  atomic_store(&rec->owner, owner);
  int32_t pid = atomic_load(&pr->pid);
  atomic_store(&pr->pid, pid + 1);
  CHECK_RC(dbp_coord_set_record_label(p.c, r, "x"), -EPERM);
  atomic_store(&pr->pid, pid);
  uint64_t ns = atomic_load(&pr->pidns);
  atomic_store(&pr->pidns, ns + 1);
  CHECK_RC(dbp_coord_set_record_label(p.c, r, "x"), -EPERM);
  atomic_store(&pr->pidns, ns);
  CHECK_RC(dbp_coord_record_label(p.c, r, buf, sizeof buf), 0);
  CHECK_STR(buf, "mine"); /* none of the refused changed it */

  dbpool_coord *ro;
  CHECK_RC(dbpool_coord_open(p.db, DBPOOL_OPEN_READONLY, &ro), 0);
  CHECK_RC(dbp_coord_set_record_label(ro, r, "x"), -EROFS);
  CHECK_RC(dbp_coord_record_label(ro, r, buf, sizeof buf), 0);
  CHECK_STR(buf, "mine");
  dbpool_coord_close(ro);
  tu_pool_close(&p);
}

TEST(another_namespace_is_another_pool)
{
  const char *db = tu_db("twons.db");
  dbpool_coord *a, *b;
  CHECK_RC(dbpool_coord_open(db, 0, &a), 0);
  char saved[64];
  snprintf(saved, sizeof saved, "%s", getenv(DBPOOL_ENV_NAMESPACE));
  char other[80];
  snprintf(other, sizeof other, "%s-b", saved);
  setenv(DBPOOL_ENV_NAMESPACE, other, 1);
  CHECK_RC(dbpool_coord_open(db, 0, &b), 0);
  CHECK(a != b);
  CHECK(strcmp(dbpool_coord_segment_name(a), dbpool_coord_segment_name(b)) != 0);
  CHECK(strstr(dbpool_coord_segment_name(b), other) != NULL);
  char seg[DBP_SEGMENT_NAME_MAX];
  snprintf(seg, sizeof seg, "%s", dbpool_coord_segment_name(b));
  dbpool_coord_close(b);
  CHECK_RC(dbpool_coord_remove(NULL, seg, 1), 0);
  setenv(DBPOOL_ENV_NAMESPACE, saved, 1);
  dbpool_coord *a2;
  CHECK_RC(dbpool_coord_open(db, 0, &a2), 0);
  CHECK(a2 == a);
  dbpool_coord_close(a2);
  dbpool_coord_close(a);
}

TEST(an_attachment_by_name_serves_opens_by_path)
{
  const char *db = tu_db("byname.db");
  char seg[DBP_SEGMENT_NAME_MAX];
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  snprintf(seg, sizeof seg, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
  dbpool_coord *by_name, *by_path;
  /* A child (no attachment cached) attaches by name first, then by path:
  ** one attachment. */
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    CCHECK(dbpool_coord_open_segment(seg, 0, &by_name) == 0);
    CCHECK(dbpool_coord_open(db, 0, &by_path) == 0);
    CCHECK(by_name == by_path);
    dbpool_holder *h;
    CCHECK(dbpool_holder_new(by_path, &h) == 0 && dbpool_holder_acquire(h, 0) == 0);
    dbpool_holder_free(h);
    dbpool_coord_close(by_path);
    dbpool_coord_close(by_name);
    CHILD_EXIT();
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
}

TEST(a_cached_attachment_follows_a_chmod_of_the_database)
{
  const char *db = tu_db("chmod.db");
  dbpool_coord *c, *again;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  dbpool_coord_close(c); /* cached */
  CHECK(chmod(db, 0600) == 0);
  CHECK_RC(dbpool_coord_open(db, 0, &again), 0);
  CHECK(again == c);
  CHECK(again->db_mode == 0600);
  CHECK(chmod(db, 0644) == 0);
  dbpool_coord_close(again);
  /* Another group, another owner: root's segment stays trusted. */
  CHECK(chown(db, 0, 1234) == 0);
  CHECK_RC(dbpool_coord_open(db, 0, &again), 0);
  CHECK(again == c && again->db_gid == 1234);
  dbpool_coord_close(again);
  CHECK(chown(db, 4321, 1234) == 0);
  CHECK_RC(dbpool_coord_open(db, 0, &again), 0);
  CHECK(again == c && again->db_uid == 4321);
  dbpool_coord_close(again);
}

TEST(a_garbage_free_list_head_is_not_trusted)
{
  tu_pool p = tu_pool_open("freelist.db", 2, 2, 0);
  dbp_header *h = p.c->hdr;
  unsigned rb = dbp_holder_record(p.h[1]);
  dbpool_holder_free(p.h[1]);
  p.n = 1;
  CHECK(atomic_load(&h->free_head) == rb);
  /* The head is free and unowned, but its state says HELD (garbage). */
  uint64_t w = atomic_load(&p.c->recs[rb].word);
  atomic_store(&p.c->recs[rb].word, REC_WORD(REC_HELD, REC_SEQ(w)));
  dbpool_holder *n1;
  CHECK_RC(dbpool_holder_new(p.c, &n1), 0);
  CHECK(dbp_holder_record(n1) != rb);
  CHECK(atomic_load(&h->free_head) == DBP_REC_NONE);
  atomic_store(&p.c->recs[rb].word, w);
  /* A head owned by someone. */
  atomic_store(&h->free_head, dbp_holder_record(p.h[0]));
  dbpool_holder *n2;
  CHECK_RC(dbpool_holder_new(p.c, &n2), 0);
  CHECK(dbp_holder_record(n2) != dbp_holder_record(p.h[0]));
  CHECK(dbp_holder_record(n2) != dbp_holder_record(n1));
  dbpool_holder_free(n2);
  dbpool_holder_free(n1);
  tu_pool_close(&p);
}

TEST(a_full_record_table_is_searched_for_a_free_record)
{
  tu_pool p = tu_pool_open("fulltable.db", 2, 3, 0);
  dbp_header *h = p.c->hdr;
  uint32_t hwm = dbp_record_hwm(h);
  unsigned rb = dbp_holder_record(p.h[1]);
  dbpool_holder_free(p.h[1]);
  p.h[1] = p.h[2];
  p.n = 2;
  /* As if every record had been used (hostile, or a long-lived pool),
  ** with no free list. */
  atomic_store(&h->record_hwm, DBP_RECORDS);
  atomic_store(&h->free_head, DBP_REC_NONE);
  for (uint32_t i = hwm; i < DBP_RECORDS; i++) atomic_store(&p.c->recs[i].owner, 1);
  dbpool_holder *n;
  CHECK_RC(dbpool_holder_new(p.c, &n), 0);
  CHECK(dbp_holder_record(n) == rb);
  CHECK_RC(dbpool_holder_acquire(n, 0), 0);
  dbpool_holder_free(n);
  for (uint32_t i = hwm; i < DBP_RECORDS; i++) atomic_store(&p.c->recs[i].owner, 0);
  tu_pool_close(&p);
}

TEST(an_inherited_handle_of_a_pool_gone_since_fails_holder_new)
{
  tu_pool p = tu_pool_open("gone.db", 2, 1, 1);
  int go[2];
  REQUIRE(pipe(go) == 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char b;
    close(go[1]);
    /* The parent's holder is not ours. */
    dbp_holder_set_idle(p.h[0], 1);
    CCHECK((atomic_load(dbp_holder_flags_word(p.h[0])) & DBP_FAST_IDLE_FLAG) == 0);
    CCHECK(read(go[0], &b, 1) == 1);
    dbpool_holder *h = NULL;
    CCHECK(dbpool_holder_new(p.c, &h) == -ENOENT);
    CCHECK(h == NULL);
    CCHECK(strstr(dbpool_last_error(), "no pool segment") != NULL);
    CHILD_EXIT();
  }
  close(go[0]);
  const char *db = p.db;
  tu_pool_close(&p);
  CHECK_RC(dbpool_coord_remove(db, NULL, 1), 0);
  CHECK(write(go[1], "g", 1) == 1);
  close(go[1]);
  CHECK(tu_wait_child(pid, 10000) == 0);
}

/* fork() through a pointer: what an application or runtime may do. */
static pid_t (*volatile fork_ptr)(void) = fork;

static int fd_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

TEST(the_fork_handler_renews_identity_and_drops_inherited_descriptors)
{
  tu_pool p = tu_pool_open("forkhandler.db", 2, 1, 1); /* registered */
  dbpool_coord *other;
  CHECK_RC(dbpool_coord_open(tu_db("forkhandler2.db"), 0, &other), 0); /* not */
  int fds[3] = {p.c->fd, p.c->lock_fd, p.c->db_fd}, other_fd = other->fd;
  CHECK(fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0 && other_fd >= 0 && other->lock_fd < 0);
  unsigned gen = dbp_fork_gen();
  pid_t parent = getpid();
  CHECK(dbp_pid() == parent);
  fflush(NULL);
  pid_t pid = fork_ptr();
  if (pid == 0) {
    CCHECK(dbp_pid() == getpid() && dbp_pid() != parent);
    CCHECK(dbp_fork_gen() != gen);
    for (int i = 0; i < 3; i++) CCHECK(!fd_open(fds[i]));
    CCHECK(!fd_open(other_fd));
    /* The child attaches as itself. */
    dbpool_holder *h;
    CCHECK(dbpool_holder_new(p.c, &h) == 0);
    CCHECK(dbpool_holder_acquire(h, 0) == 0);
    dbpool_holder_free(h);
    CHILD_EXIT();
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  for (int i = 0; i < 3; i++) CHECK(fd_open(fds[i]));
  CHECK(dbp_fork_gen() == gen && dbp_pid() == parent);
  dbpool_coord_close(other);
  tu_pool_close(&p);
}

TEST(rejoin_only_moves_holders_of_removed_pools)
{
  CHECK_RC(dbp_holder_rejoin(NULL, "x"), 0);
  dbpool_holder *none = NULL;
  CHECK_RC(dbp_holder_rejoin(&none, "x"), 0);
  tu_pool p = tu_pool_open("rejoin.db", 2, 2, 1);
  dbpool_holder *was = p.h[0];
  CHECK_RC(dbp_holder_rejoin(&p.h[0], p.db), 0); /* not removed */
  CHECK(p.h[0] == was);
  /* A holder inherited across fork is not the child's to move. */
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    dbpool_holder *h = p.h[0];
    CCHECK(dbp_holder_rejoin(&h, p.db) == 0 && h == p.h[0]);
    CHILD_EXIT();
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  /* Removed, and its database deleted: nothing to rejoin; h stays. */
  dbp_mark_removed(p.c);
  CHECK(dbp_coord_removed(p.c));
  char gone[600];
  snprintf(gone, sizeof gone, "%s.gone", p.db);
  CHECK(rename(p.db, gone) == 0);
  CHECK_RC(dbp_holder_rejoin(&p.h[0], p.db), -ENOENT);
  CHECK(p.h[0] == was);
  CHECK(rename(gone, p.db) == 0);
  /* A holder that holds nothing moves without a slot. */
  CHECK_RC(dbp_holder_rejoin(&p.h[1], p.db), 1);
  CHECK(!dbpool_holder_held(p.h[1]));
  CHECK(!dbp_coord_removed(dbp_holder_coord(p.h[1])));
  CHECK_RC(dbp_holder_rejoin(&p.h[0], p.db), 1);
  CHECK(dbpool_holder_held(p.h[0]));
  CHECK(dbp_holder_coord(p.h[0]) == dbp_holder_coord(p.h[1]));
  dbpool_coord *old = p.c;
  p.c = dbp_holder_coord(p.h[0]);
  for (int i = 0; i < 2; i++) dbpool_holder_free(p.h[i]);
  dbpool_coord_close(old);
}

TEST(open_arguments)
{
  const char *db = tu_db("openargs.db");
  dbpool_coord *c = (dbpool_coord *)1;
  int64_t v[DBPOOL_SETTING_COUNT];
  for (int s = 0; s < DBPOOL_SETTING_COUNT; s++) v[s] = DBPOOL_SETTING_UNSET;
  v[DBPOOL_SETTING_MAX_CONNECTIONS] = 0;
  CHECK_RC(dbpool_coord_open_with(db, v, &c), -ERANGE);
  CHECK(strstr(dbpool_last_error(), "max_connections=0 is out of range") != NULL);
  v[DBPOOL_SETTING_MAX_CONNECTIONS] = DBPOOL_MAX_CONNECTIONS_LIMIT + 1;
  CHECK_RC(dbpool_coord_open_with(db, v, &c), -ERANGE);
  CHECK_RC(dbpool_coord_open_with(db, NULL, &c), 0); /* no values: defaults */
  char buf[16] = "x";
  dbpool_coord_database(c, buf, 0);
  CHECK_STR(buf, "x");
  dbpool_coord_database(c, buf, sizeof buf); /* cut, terminated */
  CHECK(strlen(buf) == sizeof buf - 1 && strncmp(buf, db, sizeof buf - 1) == 0);
  dbpool_holder *h = (dbpool_holder *)1;
  CHECK_RC(dbpool_holder_new(c, NULL), -EINVAL);
  dbpool_coord_close(c);
  CHECK_RC(dbpool_coord_open_segment(NULL, 0, &c), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "no database path") != NULL);
  char missing[600];
  snprintf(missing, sizeof missing, "%s/missing.db", tu_dir);
  CHECK_RC(dbp_coord_open_file(missing, NULL, &c), 1);
  (void)h;
}

/* Every process record taken: the dead are reaped and one is reused; if
** all are alive (their liveness locks held), -ENOSPC. The test holds the
** locks itself, on its own open file description of the segment. */
TEST(a_full_process_table)
{
  const char *db = tu_db("proctable.db");
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  dbp_header *h = c->hdr;
  /* Every record live, every process dead (no lock held). */
  for (uint32_t p = 0; p < DBP_PROCESSES; p++) atomic_store(&c->procs[p].state, PROC_LIVE);
  atomic_store(&h->process_hwm, DBP_PROCESSES);
  dbpool_holder *hd;
  CHECK_RC(dbpool_holder_new(c, &hd), 0);
  CHECK(c->proc_idx == 0);
  CHECK_RC(dbpool_holder_acquire(hd, 0), 0);
  dbpool_holder_free(hd);
  dbpool_coord_close(c);
  CHECK_RC(dbpool_coord_remove(db, NULL, 1), 0);

  /* Every record free, but locked by someone alive. */
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  h = c->hdr;
  char path[256];
  snprintf(path, sizeof path, "/dev/shm%s", dbpool_coord_segment_name(c));
  int fd = open(path, O_RDWR);
  REQUIRE(fd >= 0);
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
                     .l_start = (off_t)DBP_SEGMENT_SIZE, .l_len = DBP_PROCESSES};
  REQUIRE(fcntl(fd, F_OFD_SETLK, &fl) == 0);
  atomic_store(&h->process_hwm, DBP_PROCESSES);
  hd = (dbpool_holder *)1;
  CHECK_RC(dbpool_holder_new(c, &hd), -ENOSPC);
  CHECK(hd == NULL);
  CHECK(strstr(dbpool_last_error(), "has no free process record (1024 processes attached)") != NULL);
  close(fd); /* they leave */
  CHECK_RC(dbpool_holder_new(c, &hd), 0);
  dbpool_holder_free(hd);
  dbpool_coord_close(c);
}

TEST(marking_a_held_slot_active_again)
{
  tu_pool p = tu_pool_open("idle.db", 1, 1, 1);
  dbp_holder_set_idle(p.h[0], 1);
  CHECK(atomic_load(dbp_holder_flags_word(p.h[0])) == DBP_FAST_IDLE_FLAG);
  dbp_holder_set_idle(p.h[0], 0);
  CHECK(atomic_load(dbp_holder_flags_word(p.h[0])) == 0);
  tu_pool_close(&p);
}

int main(void)
{
  tu_init("registry");
  RUN(labels_are_cut_on_a_character_boundary);
  RUN(record_labels_check_the_record);
  RUN(another_namespace_is_another_pool);
  RUN(an_attachment_by_name_serves_opens_by_path);
  RUN(a_cached_attachment_follows_a_chmod_of_the_database);
  RUN(a_garbage_free_list_head_is_not_trusted);
  RUN(a_full_record_table_is_searched_for_a_free_record);
  RUN(an_inherited_handle_of_a_pool_gone_since_fails_holder_new);
  RUN(the_fork_handler_renews_identity_and_drops_inherited_descriptors);
  RUN(rejoin_only_moves_holders_of_removed_pools);
  RUN(open_arguments);
  RUN(a_full_process_table);
  RUN(marking_a_held_slot_active_again);
  return tu_finish();
}
