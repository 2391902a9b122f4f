/* cli_options.c - ml-blockcli's command line (cli_options.h). */
#include "cli_options.h"
#include "parse.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "ml-blockcli"

static const char usage[] =
	"usage: ml-blockcli [options] [run]        run a workload (the default)\n"
	"       ml-blockcli [options] put FILE     copy FILE to the volume, from offset 0\n"
	"       ml-blockcli [options] get FILE     copy the volume (or --length bytes) to FILE\n"
	"discovery:  --volume NAME  --group NAME  --wait S (10)\n"
	"session:    --node N  --admin-socket PATH  --sched adaptive|round-robin\n"
	"workload:   --rw randrw|randread|randwrite|rw|read|write (randrw)  --read-pct N (50)\n"
	"            --discard-pct N (0)  --bs SIZE (the volume's block size)  --qd N (16)\n"
	"            --duration S (10)  --ios N  --rate IOPS  --region SIZE  --verify  --sync\n"
	"            --seed N\n"
	"put/get:    --bs SIZE (the backend's max_io)  --qd N  --sync (put)  --length SIZE (get)\n"
	"output:     --interval S (1; 0: none)  --fault-window auto|START,END  --ready-file PATH\n"
	"failover:   --failover-wait S (10)  --drain S (10)\n"
	"Exit: 0 every I/O completed once (and verified), 1 lost, duplicated, failed or\n"
	"mismatched, 2 usage, 3 setup (Corosync, no volume, no path). See doc/ml-blockcli.md.\n";

static void parse_window(const char *s, struct cli_options *o)
{
	if (!strcmp(s, "auto")) {
		o->window = WINDOW_AUTO;
		return;
	}
	char a[64], b[64];
	const char *comma = strchr(s, ',');
	if (!comma || (size_t)(comma - s) >= sizeof(a) || strlen(comma + 1) >= sizeof(b))
		usage_error(PROG, "--fault-window wants auto or START,END (seconds), not '%s'", s);
	snprintf(a, sizeof(a), "%.*s", (int)(comma - s), s);
	snprintf(b, sizeof(b), "%s", comma + 1);
	if (parse_double(a, 0, 1e6, &o->win_start) || parse_double(b, 0, 1e6, &o->win_end) ||
	    o->win_end <= o->win_start)
		usage_error(PROG, "--fault-window wants auto or START,END with START < END, not '%s'", s);
	o->window = WINDOW_FIXED;
}

/* --rw KIND: random or not, and its share of reads (-1: a mix, --read-pct). */
static void parse_rw(const char *s, struct cli_options *o, int *read_pct)
{
	static const struct { const char *name; int random, read_pct; } kinds[] = {
		{ "randrw", 1, -1 }, { "randread", 1, 100 }, { "randwrite", 1, 0 },
		{ "rw", 0, -1 },     { "read", 0, 100 },     { "write", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(s, kinds[i].name)) {
			o->wo.random = kinds[i].random;
			*read_pct = kinds[i].read_pct;
			return;
		}
	usage_error(PROG, "--rw wants randrw, randread, randwrite, rw, read or write, not '%s'", s);
}

static double opt_seconds(const char *name, const char *v, double min)
{
	double d;
	if (parse_double(v, min, 1e6, &d))
		usage_error(PROG, "--%s wants seconds (%g or more), not '%s'", name, min, v);
	return d;
}

void cli_options_parse(int argc, char **argv, struct cli_options *o)
{
	static const struct option opts[] = {
		{ "volume", required_argument, 0, 'v' },   { "group", required_argument, 0, 'g' },
		{ "wait", required_argument, 0, 'W' },     { "node", required_argument, 0, 'n' },
		{ "admin-socket", required_argument, 0, 'a' }, { "rw", required_argument, 0, 'r' },
		{ "read-pct", required_argument, 0, 'R' }, { "discard-pct", required_argument, 0, 'D' },
		{ "bs", required_argument, 0, 'b' },       { "qd", required_argument, 0, 'q' },
		{ "duration", required_argument, 0, 'd' }, { "ios", required_argument, 0, 'i' },
		{ "region", required_argument, 0, 'G' },   { "verify", no_argument, 0, 'V' },
		{ "sync", no_argument, 0, 's' },           { "seed", required_argument, 0, 'S' },
		{ "length", required_argument, 0, 'L' },   { "interval", required_argument, 0, 'I' },
		{ "fault-window", required_argument, 0, 'F' }, { "ready-file", required_argument, 0, 'y' },
		{ "failover-wait", required_argument, 0, 'f' }, { "drain", required_argument, 0, 'X' },
		{ "rate", required_argument, 0, 'T' },     { "sched", required_argument, 0, 'P' },
		{ "help", no_argument, 0, 'h' },           { 0, 0, 0, 0 },
	};
	uint64_t n;
	int c, read_pct_given = 0, duration_given = 0, rw_read_pct;
	o->qd = 16;
	o->wait_s = 10;
	o->duration = 10;
	o->drain_s = 10;
	o->failover_wait = 10;
	o->interval = 1;
	o->wo.random = 1;
	rw_read_pct = -1;
	o->wo.read_pct = 50;
	while ((c = getopt_long(argc, argv, "v:g:W:n:a:r:R:D:b:q:d:i:G:VsS:L:I:F:y:f:X:T:P:h", opts,
				NULL)) != -1) {
		switch (c) {
		case 'v':
			if (!*optarg || strpbrk(optarg, "/*? ,"))
				usage_error(PROG, "--volume wants a name (no '/', '*', '?', spaces), not '%s'",
					    optarg);
			o->volume = optarg;
			break;
		case 'g': o->group = optarg; break;
		case 'W': o->wait_s = opt_seconds("wait", optarg, 0.1); break;
		case 'n':
			if (parse_uint(optarg, 1, UINT32_MAX, &n))
				usage_error(PROG, "--node wants a number 1..4294967295, not '%s'", optarg);
			o->node = (uint32_t)n;
			break;
		case 'a': o->admin_socket = optarg; break;
		case 'r': parse_rw(optarg, o, &rw_read_pct); break;
		case 'R':
			if (parse_uint(optarg, 0, 100, &n))
				usage_error(PROG, "--read-pct wants 0..100, not '%s'", optarg);
			o->wo.read_pct = (unsigned)n;
			read_pct_given = 1;
			break;
		case 'D':
			if (parse_uint(optarg, 0, 100, &n))
				usage_error(PROG, "--discard-pct wants 0..100, not '%s'", optarg);
			o->wo.discard_pct = (unsigned)n;
			break;
		case 'b':
			if (parse_size(optarg, &n) || n < 512 || n > (16u << 20))
				usage_error(PROG, "--bs wants a size from 512 to 16M, not '%s'", optarg);
			o->wo.io_size = (uint32_t)n;
			break;
		case 'q':
			/* below the message layer's admission limit: sends are never refused */
			if (parse_uint(optarg, 1, 1024, &n))
				usage_error(PROG, "--qd wants 1..1024, not '%s'", optarg);
			o->qd = (unsigned)n;
			break;
		case 'd':
			o->duration = opt_seconds("duration", optarg, 0.1);
			duration_given = 1;
			break;
		case 'i':
			if (parse_uint(optarg, 1, UINT64_MAX, &n))
				usage_error(PROG, "--ios wants a positive count, not '%s'", optarg);
			o->wo.ios = n;
			break;
		case 'T':
			if (parse_double(optarg, 1, 1e9, &o->wo.rate))
				usage_error(PROG, "--rate wants I/Os per second (1 or more), not '%s'", optarg);
			break;
		case 'G':
			if (parse_size(optarg, &o->wo.region) || !o->wo.region)
				usage_error(PROG, "--region wants a size, not '%s'", optarg);
			break;
		case 'V': o->wo.verify = 1; break;
		case 's': o->wo.sync = 1; break;
		case 'S':
			if (parse_uint(optarg, 1, UINT64_MAX, &o->wo.seed))
				usage_error(PROG, "--seed wants a positive number, not '%s'", optarg);
			break;
		case 'L':
			if (parse_size(optarg, &o->length) || !o->length)
				usage_error(PROG, "--length wants a size, not '%s'", optarg);
			break;
		case 'I': o->interval = opt_seconds("interval", optarg, 0); break;
		case 'F': parse_window(optarg, o); break;
		case 'y': o->ready_file = optarg; break;
		case 'f': o->failover_wait = opt_seconds("failover-wait", optarg, 0.1); break;
		case 'X': o->drain_s = opt_seconds("drain", optarg, 0.1); break;
		case 'P':
			o->sched = parse_sched(optarg);
			if (o->sched < 0)
				usage_error(PROG, "--sched wants adaptive or round-robin, not '%s'", optarg);
			break;
		case 'h': fputs(usage, stdout); exit(0);
		default: usage_error(PROG, "unknown option");
		}
	}
	const char *cmd = optind < argc ? argv[optind++] : "run";
	if (!strcmp(cmd, "run")) {
		o->mode = MODE_RUN;
	} else if (!strcmp(cmd, "put") || !strcmp(cmd, "get")) {
		o->mode = !strcmp(cmd, "put") ? MODE_PUT : MODE_GET;
		if (optind >= argc)
			usage_error(PROG, "%s wants a FILE", cmd);
		o->file = argv[optind++];
	} else {
		usage_error(PROG, "unknown command '%s' (run, put or get)", cmd);
	}
	if (optind < argc)
		usage_error(PROG, "unexpected argument '%s'", argv[optind]);
	if (rw_read_pct >= 0) {
		if (read_pct_given)
			usage_error(PROG, "--read-pct goes with --rw rw or randrw only");
		o->wo.read_pct = (unsigned)rw_read_pct;
	}
	if (o->wo.read_pct + o->wo.discard_pct > 100)
		usage_error(PROG, "--read-pct and --discard-pct add up to more than 100");
	if (o->wo.ios && !duration_given)
		o->duration = 0; /* the count decides */
	if (!o->node)
		o->node = default_node_id();
}

