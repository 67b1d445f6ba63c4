/*
** interrupt.h -- for dbpool's SQLite extension (ext/, which carries its own
** copy of the coordinator): an acquire that the user can interrupt.
** Not part of the public contract: dbpool_holder_acquire keeps its promise
** that signals neither fail nor extend a wait.
*/
#ifndef DBPOOL_INTERRUPT_H
#define DBPOOL_INTERRUPT_H

#include "dbpool_coord.h"

/*
** dbp_holder_acquire_interruptible: dbpool_holder_acquire, except that a
** wait for a slot ends with -EINTR ("dbpool: interrupted while waiting for
** a slot of PATH") when SIGINT or SIGQUIT (Ctrl-C, Ctrl-\) is caught by a
** handler while it waits (a signal that this thread blocks, ignores or
** that kills the process does not count). While it sleeps, the thread
** blocks every other signal (SIGKILL and SIGSTOP cannot be); they are
** delivered between sleeps, at least every 25 ms, so a process's timers and
** children are served and never end the wait. The uncontended path is the
** same as dbpool_holder_acquire's.
*/
__attribute__((visibility("hidden"))) int
dbp_holder_acquire_interruptible(dbpool_holder *h, int timeout_ms);

#endif
