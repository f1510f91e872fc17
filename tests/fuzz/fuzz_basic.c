/*
 * fuzz_basic.c - libFuzzer harness for auth_basic_parse, the first code to
 * touch an unauthenticated Authorization header.
 *
 * What it accepts must respect the limits the monitor relies on (user and
 * password lengths, no ':' in the user, no NUL anywhere) and must survive
 * re-encoding unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "util.h"
#include "wlimits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *hdr, *user, *pass;

	/* libmicrohttpd hands us a NUL-terminated header value. */
	hdr = malloc(size + 1);
	if (!hdr)
		return 0;
	memcpy(hdr, data, size);
	hdr[size] = '\0';
	if (auth_basic_parse(hdr, &user, &pass) == 0) {
		size_t ul = strlen(user), pl = strlen(pass);
		char *cred, *enc, *h2, *u2, *p2;

		if (ul == 0 || ul > AUTH_MAX_USER || pl > AUTH_MAX_PASSWORD || strchr(user, ':'))
			abort();
		cred = malloc(ul + pl + 2);
		memcpy(cred, user, ul);
		cred[ul] = ':';
		memcpy(cred + ul + 1, pass, pl + 1);
		enc = b64_encode(cred, ul + pl + 1);
		h2 = malloc(strlen(enc) + 7);
		strcpy(h2, "Basic ");
		strcat(h2, enc);
		if (auth_basic_parse(h2, &u2, &p2) != 0 || strcmp(u2, user) || strcmp(p2, pass))
			abort();
		free(u2);
		free(p2);
		free(h2);
		free(enc);
		free(cred);
		free(user);
		free(pass);
	} else if (user || pass) {
		abort();
	}
	free(hdr);
	return 0;
}
