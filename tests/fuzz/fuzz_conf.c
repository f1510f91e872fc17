/*
 * fuzz_conf.c - libFuzzer harness for the configuration parser.
 *
 * The monitor sends conf_dump() to the worker, which parses it with the
 * same code; so anything conf_parse accepts must dump to text that parses
 * again into the identical dump.  A difference means the worker would run
 * with a configuration the monitor never validated: abort().
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c, c2;
	char err[512];
	char *d1, *d2;

	if (conf_parse((const char *)data, size, "fuzz.conf", &c, err, sizeof err) != 0) {
		/* Every refusal names the file. */
		if (strncmp(err, "fuzz.conf:", 10) != 0)
			abort();
		return 0;
	}
	d1 = conf_dump(&c);
	if (conf_parse(d1, strlen(d1), "fuzz.conf", &c2, err, sizeof err) != 0)
		abort();
	d2 = conf_dump(&c2);
	if (strcmp(d1, d2) != 0)
		abort();
	if (c2.n_listeners != c.n_listeners)
		abort();
	for (size_t i = 0; i < c.n_listeners; i++) {
		char *sec = malloc(strlen(c.listeners[i].name) + 16);
		char *v;

		strcpy(sec, "Listener ");
		strcat(sec, c.listeners[i].name);
		v = conf_get_value(&c, sec, "Port");
		if (!v)
			abort();
		free(v);
		free(sec);
	}
	free(d1);
	free(d2);
	conf_free(&c);
	conf_free(&c2);
	return 0;
}
