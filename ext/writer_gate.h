/*
** writer_gate.h -- the write-lock gate of one database file opened through
** the dbpool VFS (vfs_shim.c calls it; writer_gate.c explains it).
*/
#ifndef DBPOOL_WRITER_GATE_H
#define DBPOOL_WRITER_GATE_H

#include <pthread.h>

#include "ext.h"
#include "coordinator/writer.h"

typedef struct writer_gate {
  sqlite3_file *real;      /* the root VFS's file */
  const char *zName;       /* valid until xClose */
  dbpool_coord *coord;     /* the file's pool, opened at the first write */
  int no_pool;             /* opening it failed: stay out of the way */
  dbp_wq_handle h;         /* our entry in the writer queue */
  unsigned read_marks;     /* WAL read-mark locks held shared (bits 0..4) */
  int gated;               /* we hold the turn with SQLite's write lock */
  int lock_busy;           /* the turn is ours, SQLite's lock was busy */
  int slept;               /* a busy sleep (or a wait) ran since our BUSY */
  int woken;               /* the last wait said the turn may be ours */
  int reserving;           /* waiting before a read: keep a free turn */
  int lock_timeout_ms;     /* SQLITE_FCNTL_LOCK_TIMEOUT (SETLK builds) */
  void **busy;             /* SQLITE_FCNTL_BUSYHANDLER: {xBusy, pArg} */
  volatile void *shm0;     /* the wal-index's first page (its header) */
  uint32_t hdr_change, hdr_frames; /* the header when we took the lock */
  pthread_t refused_by;    /* the thread last refused (atomic) */
  struct writer_gate *prev, *next; /* this process's open gates */
} writer_gate;

void wg_open(writer_gate *g, const char *zName, sqlite3_file *real);
void wg_close(writer_gate *g);
int wg_shm_lock(writer_gate *g, int ofst, int n, int flags);
void wg_shm_unmap(writer_gate *g);
void wg_shm_map(writer_gate *g, int page, volatile void *p);
void wg_lock(writer_gate *g, int level);
void wg_file_control(writer_gate *g, int op, void *arg);
int wg_sleep(sqlite3_vfs *root, int us);

#endif
