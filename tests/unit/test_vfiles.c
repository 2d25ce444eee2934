/* SPDX-License-Identifier: MIT */
/* Unit tests of the control-file grammar (afs_cmd_parse), the state names,
 * the names and modes of the virtual files, and .log's readers
 * (fs/mount/vfiles.c). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "archive.h"
#include "index.h"
#include "job.h"
#include "target.h"
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

/* Everything r reads from offset off on, in pieces of step bytes
 * (malloc'd, NUL-terminated; its length in *len). */
static char *read_rest(struct afs_job *j, struct afs_vlog *r, uint64_t off, size_t step, size_t *len)
{
	char *out = malloc(2u << 20);
	size_t n;

	*len = 0;
	while ((n = afs_vfile_log_read(j, r, out + *len, step, off + *len)) > 0)
		*len += n;
	out[*len] = '\0';
	return out;
}

/* A reader of .log sees the log as it was at its open, copied from the
 * job's buffer at each read; lines dropped past the cap before it reads
 * them are skipped, and the rest is the log's own bytes. */
static void log_readers(void)
{
	struct tu_entry e[] = { { "manifest.json", "{}", 2, 1, 0, 0 } };
	const char *path = tu_zip("log.zip", e, 1);
	struct afs_archive *a = NULL;
	struct afs_index *ix = NULL;
	struct afs_target t = { 0 };
	struct afs_job *j = NULL;
	struct afs_vlog r1, r2;
	uint64_t start, end;
	char msg[256], head[100], *text, *got;
	size_t len;

	CHECK(afs_archive_open(path, &a, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_index_build(a, &ix, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_job_new(path, a, ix, &t, &j) == AFS_OK);
	for (int i = 0; i < 900; i++)
		afs_job_log(j, "line %04d %0900d", i, i);
	text = afs_job_log_text(j);
	afs_vfile_log_open(j, &r1);
	afs_vfile_log_open(j, &r2);
	CHECK(r1.end - r1.start == strlen(text) && strlen(text) > 800000);
	afs_job_log(j, "logged after the opens");
	got = read_rest(j, &r1, 0, 4093, &len); /* the log as at the open, not a byte more */
	CHECK(len == strlen(text) && strcmp(got, text) == 0);
	free(got);
	CHECK(afs_vfile_log_read(j, &r2, head, sizeof(head), 0) == sizeof(head) && memcmp(head, text, sizeof(head)) == 0);
	for (int i = 0; i < 300; i++) /* past 1 MiB: the oldest half is dropped */
		afs_job_log(j, "more %04d %0900d", i, i);
	afs_job_log_span(j, &start, &end);
	CHECK(start > r2.start + sizeof(head) && start < r2.end);
	free(text);
	text = afs_job_log_text(j);
	got = read_rest(j, &r2, sizeof(head), 65536, &len);
	/* on from the oldest line still held, to where the log ended at the open */
	CHECK(len == r2.end - start && memcmp(got, text, len) == 0 && strncmp(got, "20", 2) == 0);
	CHECK(got[len - 1] == '\n' && strstr(got, "line 0899 ") && !strstr(got, "more "));
	CHECK(r2.skipped == start - (r2.start + sizeof(head)));
	free(got);
	free(text);
	afs_job_free(j);
	afs_index_free(ix);
	afs_archive_free(a);
}

/* An unknown command is named in .status, which stays valid UTF-8 (a fuzz
 * find, fuzz_control: these exact bytes were shown raw, and JSON readers
 * refused the whole file). */
static void unknown_command_status(void)
{
	struct tu_entry e[] = { { "manifest.json", "{}", 2, 1, 0, 0 } };
	const char *path = tu_zip("unknown.zip", e, 1);
	struct afs_archive *a = NULL;
	struct afs_index *ix = NULL;
	struct afs_target t = { 0 };
	struct afs_job *j = NULL;
	char msg[256], *status;
	size_t len;

	CHECK(afs_archive_open(path, &a, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_index_build(a, &ix, msg, sizeof(msg)) == AFS_OK);
	CHECK(afs_job_new(path, a, ix, &t, &j) == AFS_OK);
	CHECK(afs_vfile_control(j, "\n\xf2", 2) == AFS_E_INVAL);
	status = afs_vfile_read(j, AFS_VF_STATUS, &len);
	CHECK(status && strstr(status, "\"error\":\t\"unknown command '\\n\xef\xbf\xbd'"));
	CHECK(status && !strchr(status, '\xf2'));
	free(status);
	afs_job_free(j);
	afs_index_free(ix);
	afs_archive_free(a);
}

int main(void)
{
	log_readers();
	unknown_command_status();
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
