/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/base/err.c: every code has a message and the right errno. */
#include <errno.h>
#include <string.h>
#include "err.h"
#include "testutil.h"

int main(void)
{
	static const struct { enum afs_err e; int no; } map[] = {
		{ AFS_OK, 0 }, { AFS_E_NOENT, ENOENT }, { AFS_E_NOTDIR, ENOTDIR }, { AFS_E_ISDIR, EISDIR },
		{ AFS_E_NOMEM, ENOMEM }, { AFS_E_IO, EIO }, { AFS_E_CORRUPT, EIO }, { AFS_E_NOTZIP, EIO },
		{ AFS_E_BADNAME, EIO }, { AFS_E_CONFLICT, EIO }, { AFS_E_UNSUPPORTED, EOPNOTSUPP },
		{ AFS_E_INVAL, EINVAL }, { AFS_E_RANGE, ERANGE }, { AFS_E_NODATA, ENODATA }, { AFS_E_ROFS, EROFS },
		{ AFS_E_BUSY, EBUSY }, { AFS_E_ACCES, EACCES }, { AFS_E_NOSPC, ENOSPC },
		{ AFS_E_CANCELLED, ECANCELED }, { AFS_E_FAILED, EIO }, { AFS_E_MFILE, EMFILE }, { AFS_E_NFILE, ENFILE },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		CHECK(afs_errno(map[i].e) == map[i].no);
		CHECK(afs_strerror(map[i].e) && strlen(afs_strerror(map[i].e)) > 3);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(afs_strerror(map[i].e), afs_strerror(map[j].e)) != 0);
	}
	CHECK(afs_errno((enum afs_err)999) == EIO);
	CHECK(strcmp(afs_strerror((enum afs_err)999), "unknown error") == 0);
	return tu_done("err");
}
