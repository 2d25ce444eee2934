/* SPDX-License-Identifier: MIT */
/* archfs-cli: archfs verify and archfs restore, linked without libfuse. */
#include "cli.h"

int main(int argc, char *argv[])
{
	return afs_cli_main(argc, argv);
}
