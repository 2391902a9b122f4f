/*
 * cli_options.h - ml-blockcli's command line: what to run and how, every
 * value checked whole. A bad command line never starts anything: it exits
 * with status 2 and says what is wrong; --help prints the usage and exits 0.
 */
#ifndef CLI_OPTIONS_H
#define CLI_OPTIONS_H

#include <stdint.h>

#include "report.h"
#include "workload.h"

#define EXIT_USAGE 2

enum cli_mode { MODE_RUN, MODE_PUT, MODE_GET };

struct cli_options {
	int mode;                       /* enum cli_mode */
	const char *file;               /* put, get */
	const char *volume;             /* NAME of block/NAME; NULL: the first seen */
	const char *group, *admin_socket, *ready_file; /* NULL: none (default group) */
	uint32_t node;                  /* message-layer node id (random if not given) */
	int sched;                      /* enum ml_sched_policy */
	unsigned qd;
	double wait_s, duration, drain_s, failover_wait, interval; /* seconds; duration 0: --ios decides */
	int window;                     /* enum report_window */
	double win_start, win_end;      /* WINDOW_FIXED */
	uint64_t length;                /* get: bytes (0: the volume) */
	struct workload_opts wo;
};

void cli_options_parse(int argc, char **argv, struct cli_options *o);

#endif
