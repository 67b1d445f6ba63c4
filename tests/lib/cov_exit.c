/*
** cov_exit.c -- coverage builds only (make coverage): linked into every test
** program with -Wl,--wrap=_exit, so that a forked test child that leaves
** with _exit() writes its coverage counters first. gcov writes them from an
** exit() handler, which _exit() skips: without this, everything only forked
** children ran (the multi-process half of the suite) would count as never
** run. __gcov_dump writes once; an exit() after it writes nothing again.
** Children killed by a signal (the crash tests) still write nothing: what
** they ran before dying is run by survivors too. The extension's counters
** (dbpool.so has a gcov of its own) are written too: see
** dbpool_test_cov_register.
*/
extern void __gcov_dump(void);
extern void __real__exit(int status) __attribute__((noreturn));

/* A shared object loaded with its own copy of gcov (the extension,
** dbpool.so, which SQLite dlopens) writes its counters only from its own
** exit() handler; such an object registers its dump function here when it
** is loaded (ext/dbpool.c, coverage builds), so that _exit() writes its
** counters too. The program exports this function (-Wl,--export-dynamic-symbol). */
static void (*cov_dumps[8])(void);
static int cov_ndumps;

__attribute__((visibility("default"))) void dbpool_test_cov_register(void (*dump)(void));
void dbpool_test_cov_register(void (*dump)(void))
{
  if (cov_ndumps < 8) cov_dumps[cov_ndumps++] = dump;
}

/* Default visibility: a shared library the program links (the fault
** layer's) calls _exit too, and the linker points it here. */
__attribute__((visibility("default"), noreturn)) void __wrap__exit(int status);
void __wrap__exit(int status)
{
  for (int i = 0; i < cov_ndumps; i++) cov_dumps[i]();
  __gcov_dump();
  __real__exit(status);
}
