/* SPDX-License-Identifier: MIT */
/* Where a restore goes: the database URL, the live uploads tree and the
 * options of docs/restore.md section 0, parsed and checked once. */
#ifndef AFS_TARGET_H
#define AFS_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "err.h"
#include "manifest.h"

struct afs_db_backend;

struct afs_target {
	enum afs_db_type kind;  /* AFS_DB_UNKNOWN when no database is configured */
	char *url;              /* the URL as given (may hold a password: never print it) */
	char *display_url;      /* the URL with every secret masked, for .status and logs (afs_target_set_database) */
	char *db_path;          /* SQLite: the absolute path of the database file */
	char *uploads;          /* absolute path of the live uploads tree, or NULL */
	char *migrate;          /* shell command run after the database step, or NULL */
	char *flag_file;        /* absolute path, or NULL */
	char *snapshot_dir;     /* NULL: beside the target */
	char *pg_bindir;        /* NULL: the newest installed */
	bool no_snapshot;
	bool terminate_blockers;
	bool create;            /* --create: a missing database is created, not refused */
	unsigned lock_wait;     /* seconds another session's lock may stall the database step */
	/* The database backends a restore can use, NULL-terminated: set by the
	 * program (afs_db_backends, restore/db/db.h), or a test's fakes.  The
	 * engine knows them only through this table. */
	const struct afs_db_backend *const *backends;
};

#define AFS_LOCK_WAIT_DEFAULT 60

/* Sets t's database from url (sqlite:////absolute/path, postgresql://,
 * postgres://, postgresql+psycopg2://, or a libpq key=value connection
 * string such as "host=/run/postgresql dbname=app password='...'"), and
 * its display_url: the backend's mask() of it when t->backends has one for
 * its kind (a URL that backend refuses is refused here, AFS_E_INVAL),
 * else afs_target_display().  A relative SQLite URL
 * (sqlite:///name.db, three slashes) is refused with AFS_E_INVAL and a
 * message naming the absolute form against the current directory: the
 * application resolves it against its own folder, which archfs cannot know.
 * On error t is unchanged and msg says why without repeating the password. */
enum afs_err afs_target_set_database(struct afs_target *t, const char *url, char *msg, size_t msglen);

/* Replaces *field with an absolute copy of path (made against the current
 * directory); used for the uploads tree, flag file and snapshot dir. */
enum afs_err afs_target_set_path(char **field, const char *path);

/* True when a restore has somewhere to go (a database or an uploads tree). */
bool afs_target_configured(const struct afs_target *t);

/* The target options as given on the command line (NULL: not given). */
struct afs_target_opts {
	const char *database, *uploads, *migrate, *flag_file, *snapshot_dir, *pg_bindir, *lock_wait;
	bool no_snapshot, terminate_blockers, create;
	/* t->backends from the start, so that the database URL is checked and
	 * masked by its backend (NULL: afs_target_display() alone) */
	const struct afs_db_backend *const *backends;
};

/* Fills t (zeroed first) from o, with the environment fallbacks
 * DATABASE_URL and UPLOAD_FOLDER (an empty value counts as unset), and
 * checks what can be checked before mounting: the uploads and snapshot
 * directories exist, the flag file's and SQLite database's directories
 * exist, --lock-wait is a number, --migrate has a database.  On error t is
 * released and msg holds a one-line reason naming the option: AFS_E_NOENT
 * or AFS_E_NOTDIR when the SQLite database's directory or the uploads
 * directory is missing (the target does not exist), AFS_E_NOMEM, or
 * AFS_E_INVAL (or another code) for a bad value. */
enum afs_err afs_target_from_options(const struct afs_target_opts *o, struct afs_target *t, char *msg,
				     size_t msglen);

/* How afs_target_create_file() made a new database file. */
struct afs_newfile {
	mode_t mode;      /* permission bits it got */
	uid_t uid;
	gid_t gid;
	char like[256];   /* the file of the directory they were taken from; "" when there was none (0600) */
	bool owner_kept;  /* like's owner could not be given (archfs is not root): the file is archfs's user's */
};

/* Creates path, which must not exist (AFS_E_CONFLICT if it does), as an
 * empty file with the mode (less execute and special bits) and owner of
 * another regular file of its directory, or 0600 and archfs's own user
 * (and the directory's group if it is setgid) when there is none.  The other file is chosen among the directory's
 * visible regular files that are not archfs's own (snapshots, staged
 * copies), SQLite databases first, then by name; symlinks are not
 * followed.  The file is 0600 from the moment it exists; the directory is
 * fsync'd.  On error nothing is left behind and msg says why. */
enum afs_err afs_target_create_file(const char *path, struct afs_newfile *how, char *msg, size_t msglen);

/* What a secret's value becomes in afs_target_display(). */
#define AFS_TARGET_MASK "xxx"

/* Overwrites in place, with 'x's (the length of s does not change), every
 * secret that a database URL or libpq connection string in s holds, in
 * every form libpq reads: the password of a URL's user-info
 * ("user:PASSWORD@"), and the values of password, sslpassword, passfile
 * and sslkey as URL query parameters (names percent-encoded or not) or as
 * key=value pairs (quoted, 'with \' escapes', or not).  s may be any text
 * holding such strings: archfs masks its own argv items ("--database=...",
 * "-o database=...,uploads=...") so that ps shows no password.  More than
 * the secret may be masked in text that is not a connection string. */
void afs_target_mask_password(char *s);

/* A malloc'd copy of s for .status and logs (NULL when out of memory):
 * the same secrets as afs_target_mask_password() finds, the user-info
 * password removed with its ':' ("postgresql://user@host/db") and every
 * other secret value replaced by AFS_TARGET_MASK. */
char *afs_target_display(const char *s);

/* Frees the strings of t and zeroes it. */
void afs_target_release(struct afs_target *t);

#endif
