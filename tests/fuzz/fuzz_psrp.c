/*
 * fuzz_psrp.c - libFuzzer harness for what runspace processes and PSRP
 * clients send the worker: out-of-process packets (one line each) and the
 * PSRP fragments inside them (lib/psrp_wire.c).
 *
 * The first byte picks the parser; the rest is its input.  Whatever parses
 * must describe bytes inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "psrp_wire.h"
#include "util.h"

static void fuzz_fragments(const unsigned char *p, size_t n)
{
	struct psrp_fragment f;
	size_t off = 0;

	while (off < n && psrp_fragment_parse(p + off, n - off, &f) == 0) {
		if (f.raw != p + off || f.total_len > n - off || f.blob + f.blob_len != f.raw + f.total_len)
			abort();
		(void)psrp_msg_type(f.blob, f.blob_len);
		(void)psrp_pipeline_state(f.blob, f.blob_len);
		int32_t v;
		if (psrp_msg_i32(f.blob, f.blob_len, "MinRunspaces", &v) == 0 && v < 0)
			abort();
		off += f.total_len;
	}
}

/* What a creationXml and a connectXml decode to: whole fragments, or refused. */
static void fuzz_pool_messages(const unsigned char *p, size_t n)
{
	struct psrp_pool_info pi;
	struct psrp_connect_req cr;

	if (psrp_pool_info_parse(p, n, &pi) == 0 && (pi.min_runspaces < 0 || pi.max_runspaces < 0))
		abort();
	if (psrp_connect_parse(p, n, &cr) == 0 && cr.sizes && (cr.min_runspaces < 0 || cr.max_runspaces < 0))
		abort();
}

static void fuzz_packet(const unsigned char *p, size_t n)
{
	struct oop_packet pk;
	char *line = malloc(n + 1);

	if (!line)
		return;
	memcpy(line, p, n);
	line[n] = '\0';
	if (oop_parse(line, n, &pk) == 0) {
		if (!uuid_valid(pk.guid))
			abort();
		if (pk.kind == OOP_DATA && (pk.data < line || pk.data + pk.data_len > line + n))
			abort();
	}
	free(line);
}

static void fuzz_b64(const unsigned char *p, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		return;
	memcpy(s, p, n);
	s[n] = '\0';
	if (strlen(s) == n)
		(void)psrp_b64_compact(s);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0: fuzz_fragments(data + 1, size - 1); break;
	case 1: fuzz_packet(data + 1, size - 1); break;
	case 3: fuzz_pool_messages(data + 1, size - 1); break;
	default: fuzz_b64(data + 1, size - 1); break;
	}
	return 0;
}
