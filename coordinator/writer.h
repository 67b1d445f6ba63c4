/*
** writer.h -- the writer queue's protocol (writer.c), for the SQLite
** extension's write-lock gate (ext/writer_gate.c). No SQLite here: the
** caller says when SQLite asks for its write lock, got it, could not get
** it, or let it go; this decides whose turn it is and lets a caller wait
** for its turn. docs/protocol.md, "The writer queue", has the protocol.
*/
#ifndef DBPOOL_WRITER_H
#define DBPOOL_WRITER_H

#include "internal.h"

/* A connection's entry, as this process knows it. */
typedef struct dbp_wq_handle {
  uint32_t idx;   /* DBP_WQ_NONE until the first gated write */
  uint64_t gen;   /* the entry's generation when we took it */
  unsigned record; /* the connection's holder record (display only) */
} dbp_wq_handle;

#define DBP_WQ_HANDLE_INIT {DBP_WQ_NONE, 0, DBP_NO_RECORD}

enum {
  DBP_WQ_GO = 0,   /* the turn is ours: take SQLite's lock now */
  DBP_WQ_WAIT = 1, /* not our turn: we hold a ticket; answer BUSY */
  DBP_WQ_SELF = 2, /* this thread's other connection has the turn */
  DBP_WQ_OFF = 3   /* the queue is off (or full): go straight to SQLite */
};

enum { DBP_WQ_TIMEOUT = 0, DBP_WQ_READY = 1, DBP_WQ_GONE = 2, DBP_WQ_OWN = 3 };

/* segment creation: an empty queue (settings: dbp_wq_setting_init). */
DBP_HIDDEN void dbp_wq_init(dbp_header *h);

/* settings.c: change writer_queue or writer_starvation_ms (validated),
** read them, or store them in a segment nobody sees yet. */
DBP_HIDDEN int dbp_wq_set(dbpool_coord *c, int setting, int64_t value);
DBP_HIDDEN int64_t dbp_wq_setting_read(const dbp_header *h, int setting);
DBP_HIDDEN void dbp_wq_setting_init(dbp_header *h, int setting, int64_t value);

DBP_HIDDEN void dbp_wq_note_journal(dbpool_coord *c, unsigned kind);

/* A transaction writer asks for the turn. woken: the caller's last wait
** said the turn was free, so a refusal now counts as being beaten. */
DBP_HIDDEN int dbp_wq_acquire(dbpool_coord *c, dbp_wq_handle *h, bool woken);
/* After DBP_WQ_GO: SQLite's lock was granted (taken) or was busy because
** a writer that does not queue holds it (lock_busy: the turn stays ours,
** reserved until until_ns + the claim window). */
DBP_HIDDEN void dbp_wq_taken(dbpool_coord *c, dbp_wq_handle *h);
DBP_HIDDEN void dbp_wq_lock_busy(dbpool_coord *c, dbp_wq_handle *h,
                                 int64_t until_ns);
/* SQLite let the lock go after dbp_wq_taken: wrote says whether anything
** was committed (else its snapshot was stale, or the transaction empty:
** the place in the queue is kept briefly for the retry). Passes the turn. */
DBP_HIDDEN void dbp_wq_done(dbpool_coord *c, dbp_wq_handle *h, bool wrote);
/* An error ended the attempt, or the connection goes: pass the turn. */
DBP_HIDDEN void dbp_wq_release(dbpool_coord *c, dbp_wq_handle *h);
/* Wait until the turn may be ours (DBP_WQ_READY), deadline_ns passes
** (DBP_WQ_TIMEOUT), we are no longer queued (DBP_WQ_GONE) or the turn is
** this thread's other connection's (DBP_WQ_OWN: don't wait). reserve: take
** a free turn as granted to us, so that nobody writes before we do. */
DBP_HIDDEN int dbp_wq_wait(dbpool_coord *c, dbp_wq_handle *h,
                           int64_t deadline_ns, bool reserve);
/* The connection is about to wait for its turn (a busy sleep after a
** refusal): make sure it holds a place (its old one if it just expired). */
DBP_HIDDEN void dbp_wq_requeue(dbpool_coord *c, dbp_wq_handle *h);
/* Is the entry queued (holding a ticket) or granted the turn? */
DBP_HIDDEN bool dbp_wq_queued(dbpool_coord *c, const dbp_wq_handle *h);
/* The connection is closing: give back the turn, the ticket and the entry. */
DBP_HIDDEN void dbp_wq_drop(dbpool_coord *c, dbp_wq_handle *h);

#endif /* DBPOOL_WRITER_H */
