/* SPDX-License-Identifier: MIT */
/* Unit tests of restore/report.c: text from an archive is escaped by the
 * JSON writer, never pasted into JSON by hand. */
#include <stdlib.h>
#include <string.h>
#include "report.h"
#include "testutil.h"

#define FFFD "\xef\xbf\xbd"

/* .status is valid UTF-8 whatever bytes its strings hold (a fuzz find: an
 * unknown command written to .control was shown byte for byte, and a JSON
 * reader refused the whole file); well-formed text is kept as it is. */
static void status_utf8(void)
{
	const char *warnings[] = { "overlong \xc0\xaf", "surrogate \xed\xa0\x80", "cut \xe6\x97", "lead \xf8\x88",
				   "past U+10FFFF \xf4\x90\x80\x80", "kept: caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80" };
	struct afs_status_view v = { .state = "idle", .error = "unknown command '\n\xf2'", .warnings = warnings,
				     .nwarnings = sizeof(warnings) / sizeof(warnings[0]) };
	char *json = afs_report_status(&v);

	CHECK(json && strstr(json, "\"unknown command '\\n" FFFD "'\""));
	CHECK(json && strstr(json, "\"overlong " FFFD FFFD "\""));
	CHECK(json && strstr(json, "\"surrogate " FFFD FFFD FFFD "\""));
	CHECK(json && strstr(json, "\"cut " FFFD FFFD "\""));
	CHECK(json && strstr(json, "\"lead " FFFD FFFD "\""));
	CHECK(json && strstr(json, "\"past U+10FFFF " FFFD FFFD FFFD FFFD "\""));
	CHECK(json && strstr(json, "\"kept: caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80\""));
	free(json);
}

/* The one-line JSON (the NOTIFY payload, the dump's header) and the flag
 * file are valid UTF-8 too: an archive named with bytes of another
 * encoding (Latin-1 "\xe9"), a dump header with a cut sequence. */
static void lines_utf8(void)
{
	struct afs_dump_view v = { .format = "custom", .vmaj = 1, .vmin = 14, .vrev = 0,
				   .server_version = "15.4 caf\xc3\xa9 \xe6\x97", .pg_dump_version = "\xff",
				   .restore_tool = "/opt/pg\xed\xa0\x80/pg_restore", .restore_tool_major = 15 };
	char *json = afs_report_notify("end", 42, "/srv/backups/caf\xe9.zip", "done");

	CHECK(json && strcmp(json, "{\"event\":\"end\",\"pid\":42,\"archive\":\"/srv/backups/caf" FFFD
				   ".zip\",\"state\":\"done\"}") == 0);
	free(json);
	json = afs_report_dump(&v);
	CHECK(json && strstr(json, "\"server_version\":\"15.4 caf\xc3\xa9 " FFFD FFFD "\""));
	CHECK(json && strstr(json, "\"pg_dump_version\":\"" FFFD "\""));
	CHECK(json && strstr(json, "\"pg_restore\":\"/opt/pg" FFFD FFFD FFFD "/pg_restore\""));
	CHECK(json && !strchr(json, '\n'));
	free(json);
	json = afs_report_flag(42, "/srv/backups/\xc0\xaf" "etc.zip", "2024-01-01T00:00:00Z");
	CHECK(json && strstr(json, "\"archive\":\t\"/srv/backups/" FFFD FFFD "etc.zip\""));
	free(json);
}

/* .status and the --json summary carry this run's uploads merge: null
 * when none was planned, then its counts, "merged" once it is done. */
static void uploads_merge(void)
{
	struct afs_status_view v = { .state = "done" };
	struct afs_summary_view s = { .command = "restore", .result = "done" };
	char *st = afs_report_status(&v), *sum;

	s.status_json = st;
	sum = afs_report_summary(&s);
	CHECK(st && strstr(st, "\"uploads_merge\":\tnull"));
	CHECK(sum && strstr(sum, "\"uploads_merge\":null"));
	free(st);
	free(sum);
	v.uploads_planned = v.uploads_merged = true;
	v.uploads_replaced = 1;
	v.uploads_created = 7;
	v.uploads_bytes = 5000000000ULL;
	s.status_json = st = afs_report_status(&v);
	sum = afs_report_summary(&s);
	CHECK(sum && strstr(sum, "\"uploads_merge\":{\"replaced\":1,\"created\":7,\"bytes\":5000000000,\"merged\":true}"));
	free(st);
	free(sum);
}

int main(void)
{
	status_utf8();
	lines_utf8();
	uploads_merge();
	/* a dump header whose strings hold a quote, a backslash and control characters */
	struct afs_dump_view v = { .format = "custom", .vmaj = 1, .vmin = 14, .vrev = 0,
				   .server_version = "15.4 \"q\" \\ \n-- forged\t\x1b[1m",
				   .pg_dump_version = "x\x7f\r", .restore_tool = "/usr/lib/postgresql/15/bin/pg_restore",
				   .restore_tool_major = 15 };
	char *json = afs_report_dump(&v);

	CHECK(json && strcmp(json, "{\"format\":\"custom\",\"archive_version\":\"1.14-0\",\"server_version\":"
				   "\"15.4 \\\"q\\\" \\\\ \\n-- forged\\t\\u001b[1m\",\"pg_dump_version\":\"x\x7f\\r\","
				   "\"pg_restore\":\"/usr/lib/postgresql/15/bin/pg_restore\",\"pg_restore_major\":15}") == 0);
	free(json);
	/* absent versions are empty strings, as before */
	v.server_version = v.pg_dump_version = NULL;
	json = afs_report_dump(&v);
	CHECK(json && strstr(json, "\"server_version\":\"\",\"pg_dump_version\":\"\""));
	free(json);
	return tu_done("report");
}
