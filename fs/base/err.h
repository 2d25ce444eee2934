/* SPDX-License-Identifier: MIT */
/* Error codes of the archfs core, and their mapping to errno at the FUSE edge. */
#ifndef AFS_ERR_H
#define AFS_ERR_H

enum afs_err {
	AFS_OK = 0,
	AFS_E_NOENT,       /* no such path in the archive */
	AFS_E_NOTDIR,      /* a path component is a file */
	AFS_E_ISDIR,       /* a file operation on a directory */
	AFS_E_NOMEM,       /* allocation failed */
	AFS_E_IO,          /* reading the archive file failed */
	AFS_E_CORRUPT,     /* entry data is malformed: bad deflate stream, size or CRC-32 mismatch */
	AFS_E_NOTZIP,      /* not a ZIP archive, or its central directory is truncated or inconsistent */
	AFS_E_BADNAME,     /* an entry name is unsafe: absolute, "..", ".", empty component */
	AFS_E_CONFLICT,    /* two entries claim the same path, or a file is also a directory */
	AFS_E_UNSUPPORTED, /* a compression method or encryption archfs cannot read */
	AFS_E_INVAL,       /* a bad argument */
	AFS_E_RANGE,       /* a value or buffer is too large */
	AFS_E_NODATA,      /* no such extended attribute */
	AFS_E_ROFS,        /* the filesystem is read-only */
	AFS_E_BUSY,        /* a restore is already running, or a lock is held elsewhere */
	AFS_E_ACCES,       /* the caller may not do this */
	AFS_E_NOSPC,       /* not enough disk space */
	AFS_E_CANCELLED,   /* the operation was cancelled */
	AFS_E_FAILED,      /* a restore step failed (the job's error says why) */
	AFS_E_MFILE,       /* the process has no file descriptor left */
	AFS_E_NFILE,       /* the system has no file descriptor left */
};

/* A short human description ("entry data is corrupt"); never NULL. */
const char *afs_strerror(enum afs_err e);

/* The positive errno that stands for e at the FUSE boundary (0 for AFS_OK). */
int afs_errno(enum afs_err e);

#endif
