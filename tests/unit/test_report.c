/* SPDX-License-Identifier: MIT */
/* Unit tests of restore/report.c: text from an archive is escaped by the
 * JSON writer, never pasted into JSON by hand. */
#include <stdlib.h>
#include <string.h>
#include "report.h"
#include "testutil.h"

int main(void)
{
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
