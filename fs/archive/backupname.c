/* SPDX-License-Identifier: MIT */
/* The names of a backups directory: archives, their shown names, the newest. */
#include <stdio.h>
#include <string.h>
#include "backupname.h"

#define SUFFIX ".zip"

enum afs_backupname_kind afs_backupname_kind(const char *file, size_t *len)
{
	size_t n = strlen(file), s = strlen(SUFFIX);

	if (file[0] == '.' || n <= s || strcmp(file + n - s, SUFFIX) != 0)
		return AFS_BACKUPNAME_NONE;
	*len = n - s;
	if (*len == strlen(AFS_BACKUPS_LATEST) && memcmp(file, AFS_BACKUPS_LATEST, *len) == 0)
		return AFS_BACKUPNAME_LATEST;
	return AFS_BACKUPNAME_ARCHIVE;
}

struct afs_backup_age afs_backupname_age(const char *name, time_t mtime)
{
	struct afs_backup_age age = { .at = mtime, .named = false };

	for (const char *p = strchr(name, '_'); p; p = strchr(p + 1, '_')) {
		struct tm tm = { 0 };

		if (strspn(p + 1, "0123456789") == 8 && p[9] == '_' && strspn(p + 10, "0123456789") >= 6 &&
		    sscanf(p + 1, "%4d%2d%2d_%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
			   &tm.tm_min, &tm.tm_sec) == 6) {
			tm.tm_year -= 1900;
			tm.tm_mon -= 1;
			tm.tm_isdst = -1;
			age.at = mktime(&tm);
			age.named = true;
			break;
		}
	}
	return age;
}

bool afs_backupname_newer(struct afs_backup_age a, struct afs_backup_age best)
{
	return a.named > best.named || (a.named == best.named && a.at >= best.at);
}
