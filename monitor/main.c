/*
 * main.c - command line of winrmd (monitor) and entry of winrmd-net (worker).
 *
 * The monitor re-executes its own binary for the worker with argv[0] set to
 * "winrmd-net", after dropping to the winrmd user; that name selects the
 * worker here, so `ps` shows what each process is.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

#include "conf.h"
#include "log.h"
#include "winrmd.h"

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: winrmd [-d] [-t | -T] [-f FILE | -E]\n"
	    "       winrmd -V | -h | --help\n"
	    "  -f FILE  configuration file (default " CONF_DEFAULT_PATH ";\n"
	    "           when that file does not exist the embedded default is used)\n"
	    "  -E       use the embedded default: HTTP 127.0.0.1:5985, HTTPS 127.0.0.1:5986\n"
	    "  -t       check the configuration and exit\n"
	    "  -T       print the effective configuration and exit\n"
	    "  -d       debug: log to stderr as well, with debug messages\n"
	    "  -V       print the version\n"
	    "  -h, --help  print this help and exit\n"
	    "winrmd stays in the foreground; run it from systemd (winrmd.service).\n");
}

int main(int argc, char **argv)
{
	/* --help is what people type first; it must not be an "invalid option". */
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *path = NULL, *base = strrchr(argv[0], '/');
	bool debug = false, test = false, dump = false, embedded = false;
	struct conf c;
	char err[1024];
	int opt, r;

	base = base ? base + 1 : argv[0];
	if (!strcmp(base, WINRMD_WORKER_NAME)) {
		/* execveat names the process after the file; ps and top should say what it is. */
		prctl(PR_SET_NAME, WINRMD_WORKER_NAME);
		debug = argc > 1 && !strcmp(argv[1], "-d");
		log_open(WINRMD_WORKER_NAME, debug);
		log_set_debug(debug);
		return worker_main(debug);
	}
	while ((opt = getopt_long(argc, argv, "f:EtTdVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': path = optarg; break;
		case 'E': embedded = true; break;
		case 't': test = true; break;
		case 'T': dump = true; break;
		case 'd': debug = true; break;
		case 'V': printf("winrmd %s\n", WINRMD_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || (path && embedded)) {
		usage(stderr);
		return 2;
	}
	log_open("winrmd", debug || test || dump);
	log_set_debug(debug);
	if (!path && !embedded) {
		if (access(CONF_DEFAULT_PATH, F_OK) == 0)
			path = CONF_DEFAULT_PATH;
		else
			embedded = true;
	}
	if (test || dump) {
		r = embedded ? conf_load_embedded(&c) : conf_load(path, &c, err, sizeof err);
		if (r < 0) {
			fprintf(stderr, "winrmd: %s\n", err);
			return 1;
		}
		if (dump) {
			char *s = conf_dump(&c);
			fputs(s, stdout);
			free(s);
		} else {
			fprintf(stderr, "winrmd: configuration %s is valid\n", c.path);
		}
		conf_free(&c);
		return 0;
	}
	return mon_main(path, embedded, debug);
}
