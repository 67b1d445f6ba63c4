/*
** cov_exit.c -- coverage builds only (make coverage): linked into every test
** program with -Wl,--wrap=_exit, so that a forked test child that leaves
** with _exit() writes its coverage counters first. gcov writes them from an
** exit() handler, which _exit() skips: without this, everything only forked
** children ran (the multi-process half of the suite) would count as never
** run. __gcov_dump writes once; an exit() after it writes nothing again.
** Children killed by a signal (the crash tests) still write nothing: what
** they ran before dying is run by survivors too.
*/
extern void __gcov_dump(void);
extern void __real__exit(int status) __attribute__((noreturn));

/* Default visibility: a shared library the program links (the fault
** layer's) calls _exit too, and the linker points it here. */
__attribute__((visibility("default"), noreturn)) void __wrap__exit(int status);
void __wrap__exit(int status)
{
  __gcov_dump();
  __real__exit(status);
}
