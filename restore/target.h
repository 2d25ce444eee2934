/* SPDX-License-Identifier: MIT */
/* Where a restore goes: the database URL, the live uploads tree and the
 * options of SPEC.md section 4, parsed and checked once. */
#ifndef AFS_TARGET_H
#define AFS_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include "err.h"
#include "manifest.h"

struct afs_target {
	enum afs_db_type kind;  /* AFS_DB_UNKNOWN when no database is configured */
	char *url;              /* the URL as given (may hold a password: never print it) */
	char *display_url;      /* the URL without its password, for .status and logs */
	char *db_path;          /* SQLite: the absolute path of the database file */
	char *uploads;          /* absolute path of the live uploads tree, or NULL */
	char *migrate;          /* shell command run after the database step, or NULL */
	char *flag_file;        /* absolute path, or NULL */
	char *snapshot_dir;     /* NULL: beside the target */
	char *pg_bindir;        /* NULL: the newest installed */
	bool no_snapshot;
	bool terminate_blockers;
	unsigned lock_wait;     /* seconds another session's lock may stall the database step */
};

#define AFS_LOCK_WAIT_DEFAULT 60

/* Sets t's database from url (sqlite:///relative, sqlite:////absolute,
 * postgresql://, postgres://, postgresql+psycopg2://).  A relative SQLite
 * path is made absolute against the current directory.  On error t is
 * unchanged and msg says why without repeating the password. */
enum afs_err afs_target_set_database(struct afs_target *t, const char *url, char *msg, size_t msglen);

/* Replaces *field with an absolute copy of path (made against the current
 * directory); used for the uploads tree, flag file and snapshot dir. */
enum afs_err afs_target_set_path(char **field, const char *path);

/* True when a restore has somewhere to go (a database or an uploads tree). */
bool afs_target_configured(const struct afs_target *t);

/* The target options as given on the command line (NULL: not given). */
struct afs_target_opts {
	const char *database, *uploads, *migrate, *flag_file, *snapshot_dir, *pg_bindir, *lock_wait;
	bool no_snapshot, terminate_blockers;
};

/* Fills t (zeroed first) from o, with the environment fallbacks
 * DATABASE_URL and UPLOAD_FOLDER (an empty value counts as unset), and
 * checks what can be checked before mounting: the uploads and snapshot
 * directories exist, the flag file's and SQLite database's directories
 * exist, --lock-wait is a number, --migrate has a database.  On error t is
 * released and msg holds a one-line reason naming the option. */
enum afs_err afs_target_from_options(const struct afs_target_opts *o, struct afs_target *t, char *msg,
				     size_t msglen);

/* Overwrites, in place, the password of every URL in s ("user:PASSWORD@")
 * with 'x's: archfs masks its own argv so that ps shows no password. */
void afs_target_mask_password(char *s);

/* Frees the strings of t and zeroes it. */
void afs_target_release(struct afs_target *t);

#endif
