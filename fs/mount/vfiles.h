/* SPDX-License-Identifier: MIT */
/* The control and status files at the top of a mount (docs/restore.md, Status files):
 * names, modes and contents, as bytes in and bytes out.  No FUSE here: the
 * FUSE operations call these, and the unit tests too. */
#ifndef AFS_VFILES_H
#define AFS_VFILES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "err.h"

struct afs_job;
struct afs_index;

enum afs_vfile {
	AFS_VF_NONE = 0,
	AFS_VF_CONTROL,  /* .control: write-only, one command per write */
	AFS_VF_PROGRESS, /* .progress: "PERCENT PHASE\n" */
	AFS_VF_FLAG,     /* .restore_in_progress: "1\n" or "0\n" */
	AFS_VF_STATUS,   /* .status: one JSON object */
	AFS_VF_LOG,      /* .log */
	AFS_VF_COUNT
};

/* The virtual file a FUSE path names ("/.status"), or AFS_VF_NONE. */
enum afs_vfile afs_vfile_lookup(const char *path);
/* The same for a name in the top directory (".status"). */
enum afs_vfile afs_vfile_named(const char *name);

/* Its name without a slash (".status") and its st_mode (S_IFREG|0200 for
 * .control, S_IFREG|0444 for the others). */
const char *afs_vfile_name(enum afs_vfile v);
mode_t afs_vfile_mode(enum afs_vfile v);

/* The content of a readable file now (malloc'd, NUL-terminated, *len
 * bytes); NULL when out of memory.  For .log, a copy of up to 1 MiB: an
 * open file reads it through struct afs_vlog instead. */
char *afs_vfile_read(struct afs_job *j, enum afs_vfile v, size_t *len);

/* An open .log: the log as it was at the open, read from the job's own
 * buffer at each read, so that an open costs no copy.  Lines the job drops
 * (past its 1 MiB cap) before the reader gets to them are skipped: the
 * reader goes on with the oldest line still held, and its later offsets
 * follow on from there.  The caller serialises the reads of one reader. */
struct afs_vlog {
	uint64_t start, end; /* the span of the job's log at the open (afs_job_log_span()) */
	uint64_t skipped;    /* bytes dropped before this reader got to them */
};

void afs_vfile_log_open(struct afs_job *j, struct afs_vlog *r);

/* Copies up to len bytes at offset off of r's file into buf; returns how
 * many (0 at its end). */
size_t afs_vfile_log_read(struct afs_job *j, struct afs_vlog *r, char *buf, size_t len, uint64_t off);

/* One write to .control: parses the command and hands it to the job.
 * AFS_E_INVAL for an unknown command; otherwise what afs_job_command()
 * returns.  An unknown command is recorded in .status and .log too. */
enum afs_err afs_vfile_control(struct afs_job *j, const char *buf, size_t len);

/* Records a warning in the job for every archive entry at the top of ix
 * that a virtual file shadows. */
void afs_vfile_note_shadowed(struct afs_job *j, const struct afs_index *ix);

/* Records a warning in the job for each entry of ix that cannot be read
 * (encrypted, or of a method nothing here decodes: afs_stream_decodable()),
 * naming it and why, for the first AFS_VFILE_UNDECODABLE_NAMED of them,
 * and one more counting the rest: the job's warnings stay few. */
#define AFS_VFILE_UNDECODABLE_NAMED 8
void afs_vfile_note_undecodable(struct afs_job *j, const struct afs_index *ix);

#endif
