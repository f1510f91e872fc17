/*
 * fuzz_xpress.c - libFuzzer harness for the XPRESS Huffman decompressor and
 * the WinRM chunk framing around it: what a client sends in a compressed
 * rsp:Send reaches both, base64-decoded, before anything else looks at it
 * (worker).
 *
 * Input layout, chosen so that a one-chunk WinRM stream is also a useful
 * raw stream: bytes 0-1 are out_len - 1 (u16le, as in a chunk header),
 * bytes 2-3 are skipped (the chunk's compressed size), the rest is one
 * XPRESS Huffman stream decompressed into exactly out_len bytes (ASan sees
 * any write past them).  The whole input is then decoded as WinRM chunks.
 *
 * Checks: the decompressor returns out_len or -EINVAL and is deterministic;
 * the chunk decoder returns 0, -EINVAL or -EMSGSIZE, leaves the buffer as
 * it was on failure, and on success produced exactly the chunks' original
 * sizes; stored framing of both the input and the decoded output decodes
 * back to the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "xpress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stored-framed data must decode to itself. */
static void stored_round_trip(const unsigned char *p, size_t n)
{
	struct buf enc, dec;

	buf_init(&enc, 0);
	buf_init(&dec, 0);
	if (xpress_winrm_encode_stored(p, n, &enc) != 0)
		abort();
	if (enc.len != n + 4 * ((n + XPRESS_WINRM_CHUNK - 1) / XPRESS_WINRM_CHUNK))
		abort();
	if (xpress_winrm_decode(enc.data, enc.len, &dec) != 0 || dec.len != n ||
	    (n && memcmp(dec.data, p, n)))
		abort();
	buf_free(&enc);
	buf_free(&dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf out;
	size_t out_len, total = 0;
	unsigned char *a, *b;
	long r;
	int rc;

	if (size < 2)
		return 0;

	/* One raw stream. */
	out_len = ((size_t)data[0] | (size_t)data[1] << 8) + 1;
	a = malloc(out_len);
	b = malloc(out_len);
	if (!a || !b)
		abort();
	r = xpress_huffman_decompress(data + (size >= 4 ? 4 : size), size >= 4 ? size - 4 : 0,
	    a, out_len);
	if (r != (long)out_len && r != -EINVAL)
		abort();
	if (xpress_huffman_decompress(data + (size >= 4 ? 4 : size), size >= 4 ? size - 4 : 0,
	    b, out_len) != r)
		abort();
	if (r > 0 && memcmp(a, b, out_len))
		abort();
	free(a);
	free(b);

	/* The whole input as WinRM chunks, appended after a marker. */
	buf_init(&out, 256 * 1024);
	buf_append(&out, "mark", 4);
	rc = xpress_winrm_decode(data, size, &out);
	if (rc != 0 && rc != -EINVAL && rc != -EMSGSIZE)
		abort();
	if (memcmp(out.data, "mark", 4))
		abort();
	if (rc != 0) {
		if (out.len != 4)
			abort();
	} else {
		for (size_t pos = 0; pos < size;) {
			if (size - pos < 4)
				abort();        /* accepted a partial header */
			total += ((size_t)data[pos] | (size_t)data[pos + 1] << 8) + 1;
			pos += 4 + ((size_t)data[pos + 2] | (size_t)data[pos + 3] << 8) + 1;
			if (pos > size)
				abort();        /* accepted a short chunk */
		}
		if (out.len != 4 + total)
			abort();
		stored_round_trip(out.data + 4, out.len - 4);
	}
	buf_free(&out);

	stored_round_trip(data, size);
	return 0;
}
