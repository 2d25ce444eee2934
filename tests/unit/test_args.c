/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/cli/args.c: archfs's options in every form, libfuse's left alone. */
#include <string.h>
#include "args.h"
#include "testutil.h"

#define N(v) ((int)(sizeof(v) / sizeof((v)[0])))
#define STREQ(a, b) ((a) && strcmp((a), (b)) == 0)

int main(void)
{
	struct afs_args a;

	/* each form of a value option, flags, positionals around them */
	{
		char *argv[] = { "archfs", "--database", "sqlite:////srv/a.db", "backup.zip", "--uploads=/srv/up",
				 "-o", "flag_file=/run/f,allow_other,snapshot-dir=/b\\,c", "/mnt", "-f",
				 "-olock-wait=5,no_snapshot", "--create", "-d" };
		CHECK(afs_args_parse(&a, N(argv), argv) == AFS_OK && a.bad[0] == '\0');
		CHECK(STREQ(a.target.database, "sqlite:////srv/a.db") && STREQ(a.target.uploads, "/srv/up"));
		CHECK(STREQ(a.target.flag_file, "/run/f") && STREQ(a.target.snapshot_dir, "/b,c"));
		CHECK(STREQ(a.target.lock_wait, "5") && a.target.no_snapshot && a.target.create);
		CHECK(!a.target.terminate_blockers && !a.target.migrate && !a.seek_cache && !a.index_dir);
		CHECK(a.npos == 2 && STREQ(a.pos[0], "backup.zip") && STREQ(a.pos[1], "/mnt"));
		/* libfuse's own, in order, the -o list without archfs's items */
		CHECK(a.nfuse == 4 && STREQ(a.fuse[0], "-o") && STREQ(a.fuse[1], "allow_other") && STREQ(a.fuse[2], "-f") &&
		      STREQ(a.fuse[3], "-d") && a.fuse[4] == NULL);
		afs_args_release(&a);
		CHECK(a.nown == 0 && a.fuse == NULL);
	}
	/* values are copies: argv may be masked after */
	{
		char url[] = "postgresql://u:secret@h/db";
		char *argv[] = { "archfs", "verify", "b.zip", "--database", url, "--seek-cache=64", "-o", "ro,fsname=a\\,b",
				 "--index-dir", "none" };
		CHECK(afs_args_parse(&a, N(argv), argv) == AFS_OK);
		memset(url, 'x', sizeof(url) - 1);
		CHECK(STREQ(a.target.database, "postgresql://u:secret@h/db") && STREQ(a.seek_cache, "64"));
		CHECK(STREQ(a.index_dir, "none"));
		CHECK(a.nfuse == 2 && STREQ(a.fuse[1], "ro,fsname=a\\,b")); /* escapes kept for libfuse */
		afs_args_release(&a);
	}
	/* access-time options, refused by libfuse, change nothing read-only: dropped */
	{
		char *argv[] = { "archfs", "a.zip", "/mnt", "-o", "ro,noatime,nodiratime,relatime,dev,suid",
				 "-o", "strictatime,lazytime", "-orelatime,uploads=/u" };
		CHECK(afs_args_parse(&a, N(argv), argv) == AFS_OK && STREQ(a.target.uploads, "/u"));
		CHECK(a.nfuse == 2 && STREQ(a.fuse[0], "-o") && STREQ(a.fuse[1], "ro,noatime,dev,suid") && !a.fuse[2]);
		afs_args_release(&a);
	}
	/* help, version, "--" */
	{
		char *argv[] = { "archfs", "-h", "-V", "--", "-weird-name.zip" };
		CHECK(afs_args_parse(&a, N(argv), argv) == AFS_OK && a.help && a.version);
		CHECK(a.npos == 1 && STREQ(a.pos[0], "-weird-name.zip"));
		afs_args_release(&a);
	}
	/* usage errors name the option */
	{
		char *unknown[] = { "archfs", "--bogus", "a", "b" };
		char *novalue[] = { "archfs", "a", "b", "--database" };
		char *flagval[] = { "archfs", "a", "b", "--create=yes" };
		char *ovalue[] = { "archfs", "a", "b", "-o", "no_snapshot=1" };
		char *third[] = { "archfs", "a", "b", "c" };
		char *noolist[] = { "archfs", "a", "b", "-o" };

		CHECK(afs_args_parse(&a, N(unknown), unknown) == AFS_E_INVAL && strstr(a.bad, "'--bogus'") &&
		      strstr(a.bad, "--help"));
		afs_args_release(&a);
		CHECK(afs_args_parse(&a, N(novalue), novalue) == AFS_E_INVAL && strstr(a.bad, "'--database'"));
		afs_args_release(&a);
		CHECK(afs_args_parse(&a, N(flagval), flagval) == AFS_E_INVAL && strstr(a.bad, "'--create=yes'"));
		afs_args_release(&a);
		CHECK(afs_args_parse(&a, N(ovalue), ovalue) == AFS_E_INVAL && strstr(a.bad, "'no_snapshot=1'"));
		afs_args_release(&a);
		CHECK(afs_args_parse(&a, N(third), third) == AFS_E_INVAL && strstr(a.bad, "unexpected argument 'c'"));
		afs_args_release(&a);
		CHECK(afs_args_parse(&a, N(noolist), noolist) == AFS_E_INVAL && strstr(a.bad, "'-o'"));
		afs_args_release(&a);
	}
	return tu_done("args");
}
