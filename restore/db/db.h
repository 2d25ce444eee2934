/* SPDX-License-Identifier: MIT */
/* The database backends archfs has, as the table a program hands the
 * restore engine (struct afs_target's backends). */
#ifndef AFS_DB_H
#define AFS_DB_H

#include "backend.h"

extern const struct afs_db_backend afs_sqlite_backend; /* restore/db/sqlite.c */
extern const struct afs_db_backend afs_pg_backend;     /* restore/db/pg.c */

/* Every backend above, NULL-terminated. */
extern const struct afs_db_backend *const afs_db_backends[];

#endif
