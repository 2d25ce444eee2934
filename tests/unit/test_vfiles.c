/* SPDX-License-Identifier: MIT */
/* Unit tests of the control-file grammar (afs_cmd_parse), the state names,
 * and the names and modes of the virtual files (fs/mount/vfiles.c). */
#include <string.h>
#include <sys/stat.h>
#include "job.h"
#include "vfiles.h"
#include "testutil.h"

/* Parses text (len bytes, embedded NULs included); want < 0: refused. */
static void parse(const char *text, size_t len, int want)
{
	enum afs_cmd cmd = (enum afs_cmd)-1;
	enum afs_err err = afs_cmd_parse(text, len, &cmd);

	if (want < 0) {
		CHECK(err == AFS_E_INVAL);
		if (err != AFS_E_INVAL)
			fprintf(stderr, "  accepted: '%.*s' (%zu bytes)\n", (int)len, text, len);
	} else {
		CHECK(err == AFS_OK && cmd == (enum afs_cmd)want);
		if (err != AFS_OK || cmd != (enum afs_cmd)want)
			fprintf(stderr, "  '%.*s': err %d cmd %d, want %d\n", (int)len, text, err, (int)cmd, want);
	}
}

#define P(text, want) parse(text, strlen(text), want)

int main(void)
{
	/* ---- the commands */
	P("restore", AFS_CMD_RESTORE);
	P("restore\n", AFS_CMD_RESTORE);
	P("restore\r\n", AFS_CMD_RESTORE);
	P("  restore database \n", AFS_CMD_RESTORE_DATABASE);
	P("restore database", AFS_CMD_RESTORE_DATABASE);
	P("restore uploads", AFS_CMD_RESTORE_UPLOADS);
	P("restore uploads\n", AFS_CMD_RESTORE_UPLOADS);
	P("verify", AFS_CMD_VERIFY);
	P("verify\n", AFS_CMD_VERIFY);
	P("\tverify \n", AFS_CMD_VERIFY);
	P("cancel", AFS_CMD_CANCEL);
	P("cancel\n", AFS_CMD_CANCEL);
	P("\n\ncancel\n\n", AFS_CMD_CANCEL);

	/* ---- refused */
	P("", -1);
	P("\n", -1);
	P("   \n", -1);
	P("bogus", -1);
	P("restore everything", -1);
	P("RESTORE", -1);
	P("Restore", -1);
	P("restore database extra", -1);
	P("restore uploads database", -1);
	P("database", -1);
	P("uploads", -1);
	P("restoredatabase", -1);
	P("verify now", -1);
	P("cancel cancel", -1);
	P("restore\ndatabase\nextra\n", -1);
	P("restoreeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", -1);
	P("restore databaseeeeeeeeeeeeeeeeeeeeeeeeee", -1);
	parse("restore\0database", 16, -1);
	parse("res\0tore", 8, -1);
	parse("verify\0", 7, -1);
	parse("\0", 1, -1);
	parse("restore", 0, -1);
	/* only len bytes count */
	parse("restore database", 7, AFS_CMD_RESTORE);
	parse("verify\nbogus", 7, AFS_CMD_VERIFY);
	parse("cancelled", 6, AFS_CMD_CANCEL);

	/* ---- the state names of .status and .progress */
	static const struct {
		enum afs_state st;
		const char *name;
	} states[] = {
		{ AFS_ST_IDLE, "idle" },       { AFS_ST_VERIFYING, "verifying" }, { AFS_ST_SNAPSHOT, "snapshot" },
		{ AFS_ST_DATABASE, "database" }, { AFS_ST_UPLOADS, "uploads" },     { AFS_ST_MIGRATE, "migrate" },
		{ AFS_ST_DONE, "done" },       { AFS_ST_FAILED, "failed" },       { AFS_ST_CANCELLED, "cancelled" },
	};
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		const char *n = afs_state_name(states[i].st);
		CHECK(n && strcmp(n, states[i].name) == 0);
		for (size_t j = 0; j < i; j++) /* all distinct */
			CHECK(strcmp(n, afs_state_name(states[j].st)) != 0);
	}
	CHECK(afs_state_name((enum afs_state)1000) != NULL);

	/* ---- the virtual files */
	static const struct {
		enum afs_vfile v;
		const char *path;
	} vf[] = {
		{ AFS_VF_CONTROL, "/.control" }, { AFS_VF_PROGRESS, "/.progress" },
		{ AFS_VF_FLAG, "/.restore_in_progress" }, { AFS_VF_STATUS, "/.status" }, { AFS_VF_LOG, "/.log" },
	};
	CHECK(sizeof(vf) / sizeof(vf[0]) == AFS_VF_COUNT - 1);
	for (size_t i = 0; i < sizeof(vf) / sizeof(vf[0]); i++) {
		mode_t m = afs_vfile_mode(vf[i].v);

		CHECK(afs_vfile_lookup(vf[i].path) == vf[i].v);
		CHECK(afs_vfile_named(vf[i].path + 1) == vf[i].v);
		CHECK(strcmp(afs_vfile_name(vf[i].v), vf[i].path + 1) == 0);
		CHECK(S_ISREG(m));
		CHECK((m & 07777) == (vf[i].v == AFS_VF_CONTROL ? 0200 : 0444));
	}
	const char *none[] = { "/x", ".control", "/dir/.control", "/", "", "//.control", "/.control/", "/.CONTROL",
			       "/.controlx", "/.contro", "/control", "/.status.", "/ .status", "/.log/x", "/.." };
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		CHECK(afs_vfile_lookup(none[i]) == AFS_VF_NONE);
		if (afs_vfile_lookup(none[i]) != AFS_VF_NONE)
			fprintf(stderr, "  '%s' named a virtual file\n", none[i]);
	}
	CHECK(afs_vfile_named("control") == AFS_VF_NONE);
	CHECK(afs_vfile_named("/.control") == AFS_VF_NONE);
	CHECK(afs_vfile_named("") == AFS_VF_NONE);
	CHECK(afs_vfile_named("x/.status") == AFS_VF_NONE);
	return tu_done("vfiles");
}
