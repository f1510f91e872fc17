/*
 * fuzz_b64.c - libFuzzer harness for b64_decode (Basic credentials, and
 * later every rsp:Stream payload).
 *
 * Checks the output bound (b64_decoded_max), that an exact-size buffer is
 * enough and one byte less is -EMSGSIZE, and that decode(encode(x)) == x.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap = b64_decoded_max(size);
	unsigned char *out = malloc(cap ? cap : 1), *again;
	const char *in = (const char *)data;
	long n, m;
	char *enc;

	if (!out)
		return 0;
	n = b64_decode(in, size, out, cap);
	if (n == -EMSGSIZE)
		abort();                /* b64_decoded_max lied */
	if (n < 0) {
		if (n != -EINVAL)
			abort();
		free(out);
		return 0;
	}
	if ((size_t)n > cap)
		abort();
	/* Exactly-sized output works; the output buffer is never overrun. */
	again = malloc((size_t)n ? (size_t)n : 1);
	if (b64_decode(in, size, again, (size_t)n) != n || memcmp(again, out, (size_t)n))
		abort();
	if (n > 0 && b64_decode(in, size, again, (size_t)n - 1) != -EMSGSIZE)
		abort();
	enc = b64_encode(out, (size_t)n);
	m = b64_decode(enc, strlen(enc), again, (size_t)n);
	if (m != n || memcmp(again, out, (size_t)n))
		abort();
	free(enc);
	free(again);
	free(out);
	return 0;
}
