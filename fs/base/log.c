/* SPDX-License-Identifier: MIT */
/* Diagnostics of the daemon: stderr in the foreground, syslog once detached. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <syslog.h>
#include "log.h"

static atomic_bool use_syslog;
static atomic_bool debug;

void afs_log_to_syslog(void)
{
	openlog("archfs", LOG_PID, LOG_DAEMON);
	atomic_store(&use_syslog, true);
}

void afs_log_set_debug(bool on)
{
	atomic_store(&debug, on);
}

void afs_log(enum afs_log_level lvl, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	va_list ap;

	if (lvl == AFS_LOG_DEBUG && !atomic_load(&debug))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (atomic_load(&use_syslog))
		syslog(prio[lvl], "%s", line);
	else
		fprintf(stderr, "archfs: %s\n", line); /* one fprintf: lines stay whole across threads */
}
