/* SPDX-License-Identifier: MIT */
/* Diagnostics of the daemon: stderr in the foreground, syslog once detached. */
#ifndef AFS_LOG_H
#define AFS_LOG_H

#include <stdbool.h>

enum afs_log_level { AFS_LOG_ERR, AFS_LOG_WARN, AFS_LOG_INFO, AFS_LOG_DEBUG };

/* Sends later messages to syslog (ident "archfs") instead of stderr. */
void afs_log_to_syslog(void);

/* Shows AFS_LOG_DEBUG messages too (archfs -d). */
void afs_log_set_debug(bool on);

/* One line, "archfs: " prefixed on stderr; the newline is added. */
void afs_log(enum afs_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
