/* SPDX-License-Identifier: MIT */
/* The command line of archfs and archfs-cli, read without libfuse: the
 * target and mount options in each of their forms, the positional
 * arguments, and whatever is left for libfuse (-f, -d, -s, -o allow_other).
 *
 * Every option of archfs is accepted as --name VALUE, --name=VALUE and as
 * an item of -o (name=value; '-' or '_' between words; "\," escapes a comma
 * inside a value, as libfuse's own -o parser does).  Flags take no value.
 */
#ifndef AFS_ARGS_H
#define AFS_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include "target.h"

#define AFS_ARGS_MAX_POS 2

struct afs_args {
	struct afs_target_opts target; /* values point into owned copies */
	const char *seek_cache;        /* the mount options of archfs's own */
	const char *index_dir;
	const char *max_open_archives;
	const char *remote_cache;      /* remote archives (remote.h): mount, verify, restore */
	const char *s3_endpoint;
	const char *ca_file;
	bool help, version;
	bool json;                     /* verify/restore --json: JSON lines on stdout */
	const char *pos[AFS_ARGS_MAX_POS]; /* ARCHIVE MOUNTPOINT, or verify|restore ARCHIVE */
	int npos;
	char **fuse;     /* options left for libfuse, in order, NULL-terminated */
	int nfuse;
	char bad[256];   /* the first usage error; "" when none */
	/* owned copies */
	char **own;
	size_t nown, capown;
};

/* Reads argv[1..argc).  Returns AFS_OK, AFS_E_INVAL with a one-line reason
 * in a->bad (naming the option), or AFS_E_NOMEM.  Values are copies:
 * argv may then be changed (archfs masks passwords in it).  Call
 * afs_args_release() in every case. */
enum afs_err afs_args_parse(struct afs_args *a, int argc, char *const argv[]);

/* Frees every copy; a is zeroed. */
void afs_args_release(struct afs_args *a);

#endif
