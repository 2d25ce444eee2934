/* SPDX-License-Identifier: MIT */
/* Error descriptions and the single errno mapping used at the FUSE boundary. */
#include <errno.h>
#include "err.h"

const char *afs_strerror(enum afs_err e)
{
	switch (e) {
	case AFS_OK: return "success";
	case AFS_E_NOENT: return "no such file or directory";
	case AFS_E_NOTDIR: return "not a directory";
	case AFS_E_ISDIR: return "is a directory";
	case AFS_E_NOMEM: return "out of memory";
	case AFS_E_IO: return "cannot read the archive file";
	case AFS_E_CORRUPT: return "entry data is corrupt";
	case AFS_E_NOTZIP: return "not a ZIP archive, or truncated";
	case AFS_E_BADNAME: return "unsafe entry name";
	case AFS_E_CONFLICT: return "conflicting entry names";
	case AFS_E_UNSUPPORTED: return "unsupported compression method or encryption";
	case AFS_E_INVAL: return "invalid argument";
	case AFS_E_RANGE: return "value out of range";
	case AFS_E_NODATA: return "no such attribute";
	case AFS_E_ROFS: return "read-only file system";
	case AFS_E_BUSY: return "busy";
	case AFS_E_ACCES: return "permission denied";
	case AFS_E_NOSPC: return "not enough disk space";
	case AFS_E_CANCELLED: return "cancelled";
	case AFS_E_FAILED: return "failed";
	case AFS_E_MFILE: return "too many open files";
	case AFS_E_NFILE: return "too many open files in the system";
	}
	return "unknown error";
}

int afs_errno(enum afs_err e)
{
	switch (e) {
	case AFS_OK: return 0;
	case AFS_E_NOENT: return ENOENT;
	case AFS_E_NOTDIR: return ENOTDIR;
	case AFS_E_ISDIR: return EISDIR;
	case AFS_E_NOMEM: return ENOMEM;
	case AFS_E_IO: return EIO;
	case AFS_E_CORRUPT: return EIO;
	case AFS_E_NOTZIP: return EIO;
	case AFS_E_BADNAME: return EIO;
	case AFS_E_CONFLICT: return EIO;
	case AFS_E_UNSUPPORTED: return EOPNOTSUPP;
	case AFS_E_INVAL: return EINVAL;
	case AFS_E_RANGE: return ERANGE;
	case AFS_E_NODATA: return ENODATA;
	case AFS_E_ROFS: return EROFS;
	case AFS_E_BUSY: return EBUSY;
	case AFS_E_ACCES: return EACCES;
	case AFS_E_NOSPC: return ENOSPC;
	case AFS_E_CANCELLED: return ECANCELED;
	case AFS_E_FAILED: return EIO;
	case AFS_E_MFILE: return EMFILE;
	case AFS_E_NFILE: return ENFILE;
	}
	return EIO;
}
