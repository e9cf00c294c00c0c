// SQLite 3 for Swift, plus the destructor sentinels that do not import as constants.
#ifndef PARLEY_CSQLITE_SHIM_H
#define PARLEY_CSQLITE_SHIM_H

#include <sqlite3.h>

static inline sqlite3_destructor_type parley_sqlite_transient(void) { return SQLITE_TRANSIENT; }
static inline sqlite3_destructor_type parley_sqlite_static(void) { return SQLITE_STATIC; }

#endif
