/* SPDX-License-Identifier: MIT */
/* Splits the cost of mounting an archive: libzip's open of the central
 * directory, then the archfs index build; prints seconds and index memory. */
#include <stdio.h>
#include <time.h>
#include "archive.h"
#include "index.h"

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct afs_archive *a = NULL;
	struct afs_index *ix = NULL;
	char msg[256];
	double t0, t1, t2;

	if (argc != 2) {
		fprintf(stderr, "usage: mountcost ARCHIVE.zip\n");
		return 2;
	}
	afs_archive_init_process(); /* as archfs does */
	t0 = now();
	if (afs_archive_open(argv[1], &a, msg, sizeof(msg)) != AFS_OK) {
		fprintf(stderr, "mountcost: %s: %s\n", argv[1], msg);
		return 1;
	}
	t1 = now();
	if (afs_index_build(a, &ix, msg, sizeof(msg)) != AFS_OK) {
		fprintf(stderr, "mountcost: %s: %s\n", argv[1], msg);
		afs_archive_free(a);
		return 1;
	}
	t2 = now();
	printf("libzip open %.3f s, index build %.3f s, index %zu bytes for %u nodes\n", t1 - t0, t2 - t1,
	       afs_index_memory(ix), afs_index_count(ix));
	afs_index_free(ix);
	afs_archive_free(a);
	return 0;
}
