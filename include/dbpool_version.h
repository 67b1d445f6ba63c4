/*
** dbpool_version.h -- the version of the dbpool headers, at compile time
** (as SQLITE_VERSION and SQLITE_VERSION_NUMBER). dbpool_version() and
** dbpool_version_number() give the library's at run time: compare the two to
** find a program built against other headers than the library it runs with.
**
** Kept equal to the VERSION file by `make version-header`; the docs check
** (tests/docs/check_docs.py) fails when they differ.
*/
#ifndef DBPOOL_VERSION_H
#define DBPOOL_VERSION_H

/* "X.Y.Z" */
#define DBPOOL_VERSION "1.0.1"
/* X * 1000000 + Y * 1000 + Z */
#define DBPOOL_VERSION_NUMBER 1000001

#endif /* DBPOOL_VERSION_H */
