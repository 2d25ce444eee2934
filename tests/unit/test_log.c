/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/base/log.c: one prefixed line per message, debug only when asked. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "log.h"
#include "testutil.h"

/* Runs the logging calls with stderr sent to a file; returns what was written. */
static char *captured(void (*fn)(void))
{
	static char buf[4096];
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	fflush(stderr);
	dup2(fileno(f), STDERR_FILENO);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void plain(void)
{
	afs_log(AFS_LOG_ERR, "%s: CRC-32 mismatch (%08x)", "a/b.txt", 0xdeadbeefu);
	afs_log(AFS_LOG_DEBUG, "hidden %d", 1);
}

static void with_debug(void)
{
	afs_log_set_debug(true);
	afs_log(AFS_LOG_DEBUG, "shown %d", 2);
	afs_log_set_debug(false);
	afs_log(AFS_LOG_DEBUG, "hidden %d", 3);
}

static void to_syslog(void)
{
	afs_log_to_syslog();
	afs_log(AFS_LOG_WARN, "this goes to syslog, not stderr");
}

int main(void)
{
	CHECK(strcmp(captured(plain), "archfs: a/b.txt: CRC-32 mismatch (deadbeef)\n") == 0);
	CHECK(strcmp(captured(with_debug), "archfs: shown 2\n") == 0);
	CHECK(strcmp(captured(to_syslog), "") == 0);
	return tu_done("log");
}
