/* SPDX-License-Identifier: MIT */
/* The table of database backends archfs is built with. */
#include <stddef.h>
#include "db.h"

const struct afs_db_backend *const afs_db_backends[] = { &afs_sqlite_backend, &afs_pg_backend, NULL };
