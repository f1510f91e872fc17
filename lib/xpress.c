/*
 * xpress.c - MS-XCA LZ77+Huffman decompression and WinRM chunk framing
 * (worker).
 *
 * Format (MS-XCA 2.1, 2.2).  The output is cut into blocks of 65536 bytes;
 * each block's compressed form starts with a 256-byte table of 4-bit code
 * lengths for 512 symbols (symbol 2k in the low nibble of byte k, 2k+1 in
 * the high nibble; 0 = unused), which define a canonical Huffman code:
 * codes are handed out in order of length, then of symbol value.  Then
 * comes a bit stream read as little-endian 16-bit words, most significant
 * bit first, into a 32-bit register that always holds at least 16 unread
 * bits: two words are loaded at the start of a block, and one more each
 * time a symbol (or the distance bits of a match) leaves fewer than 16.
 * Symbols 0-255 are literals.  A symbol 256 + 16*D + L is a match: its
 * length is L + 3, or for L == 15 one raw byte B follows in the input at
 * the current read position (between the 16-bit words): length B + 18, or
 * for B == 255 a raw u16le V follows: length V + 3 (V < 15 is invalid;
 * V == 0 is followed by a raw u32le length - 3, which Samba reports of
 * Windows' decompressor).  Then D more bits from the register give the
 * distance, (1 << D) + bits.  The EOF symbol is 256 after the last byte;
 * we never read it, because the caller knows the output size.  A match may
 * run over the end of its block (Windows writes such matches; Samba's test
 * vectors have them); the next block's table starts at the read position,
 * i.e. after the last word loaded.
 *
 * Decoding: codes of up to XP_FAST_BITS bits through a lookup table, longer
 * ones by walking the canonical code one length at a time (at most 15
 * steps).  The input end: a word the bit register wants that lies (partly)
 * past the input is loaded as zeros and counted as phantom bits; it is an
 * error only if a phantom bit is actually consumed.  That accepts a stream
 * whose compressor padded less than the register looks ahead, and rejects
 * every stream that needs bits it does not have.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "xpress.h"

#define XP_TABLE_LEN   256              /* bytes of code lengths per block */
#define XP_NSYMS       512
#define XP_MAX_BITS    15
#define XP_FAST_BITS   10
#define XP_BLOCK       65536

struct xp_code {
	uint16_t count[XP_MAX_BITS + 1];        /* number of codes of each length */
	uint16_t sorted[XP_NSYMS];              /* symbols in canonical order */
	uint16_t fast[1u << XP_FAST_BITS];      /* len << 9 | sym; 0 = longer code */
};

struct xp_in {
	/* Fails for good once a phantom word is loaded: after it, no raw
	 * byte or next block's table can lie inside the input. */
	struct bytes_reader r;
	uint32_t bits;          /* unread bits at the top */
	int extra;              /* unread bits - 16, >= 0 between steps */
	unsigned phantom;       /* unread bits that lie past the input */
};

/* Build the code from a block's 256-byte length table; -EINVAL unless the
 * lengths form a complete prefix code (Kraft sum exactly 1). */
static int xp_build(struct xp_code *c, const unsigned char *t)
{
	uint16_t offs[XP_MAX_BITS + 2];
	long left = 1;
	unsigned code, idx;

	memset(c->count, 0, sizeof c->count);
	for (unsigned s = 0; s < XP_NSYMS; s++)
		c->count[(t[s >> 1] >> ((s & 1) * 4)) & 15]++;
	c->count[0] = 0;
	for (unsigned l = 1; l <= XP_MAX_BITS; l++) {
		left = left * 2 - c->count[l];
		if (left < 0)
			return -EINVAL;         /* over-subscribed */
	}
	if (left != 0)
		return -EINVAL;                 /* incomplete, or no symbols at all */

	offs[1] = 0;
	for (unsigned l = 1; l <= XP_MAX_BITS; l++)
		offs[l + 1] = (uint16_t)(offs[l] + c->count[l]);
	for (unsigned s = 0; s < XP_NSYMS; s++) {
		unsigned l = (t[s >> 1] >> ((s & 1) * 4)) & 15;
		if (l)
			c->sorted[offs[l]++] = (uint16_t)s;
	}

	memset(c->fast, 0, sizeof c->fast);
	code = 0;
	idx = 0;
	for (unsigned l = 1; l <= XP_FAST_BITS; l++) {
		for (unsigned i = 0; i < c->count[l]; i++, code++) {
			unsigned span = 1u << (XP_FAST_BITS - l);
			unsigned first = code << (XP_FAST_BITS - l);
			uint16_t e = (uint16_t)(l << 9 | c->sorted[idx++]);

			/* complete code: first + span <= 1 << XP_FAST_BITS */
			for (unsigned j = 0; j < span; j++)
				c->fast[first + j] = e;
		}
		code <<= 1;
	}
	return 0;
}

/* Load the next 16-bit word below the unread bits (zeros past the end). */
static void xp_refill(struct xp_in *in)
{
	uint32_t w = bytes_u16le(&in->r);       /* 0 past the end */

	if (in->r.bad)
		in->phantom += 16;
	in->bits |= w << -in->extra;
	in->extra += 16;
}

/* Drop n <= 15 bits, then top the register up if fewer than 16 remain. */
static int xp_consume(struct xp_in *in, unsigned n)
{
	if (n == 0)
		return 0;
	in->bits <<= n;
	in->extra -= (int)n;
	if ((unsigned)(16 + in->extra) < in->phantom)
		return -EINVAL;                 /* used bits past the input */
	if (in->extra < 0)
		xp_refill(in);
	return 0;
}

/* Decode one symbol; -EINVAL if it would use bits past the input. */
static int xp_symbol(struct xp_in *in, const struct xp_code *c, unsigned *sym)
{
	uint16_t e = c->fast[in->bits >> (32 - XP_FAST_BITS)];
	unsigned len;

	if (e) {
		len = e >> 9;
		*sym = e & 511;
	} else {
		/* Canonical walk: at each length, the codes of that length are
		 * the values first .. first + count - 1. */
		unsigned v = in->bits >> (32 - XP_MAX_BITS);
		unsigned code = 0, first = 0, idx = 0;

		for (len = 1; len <= XP_MAX_BITS; len++) {
			code |= (v >> (XP_MAX_BITS - len)) & 1;
			if (code < first + c->count[len])
				break;
			idx += c->count[len];
			first = (first + c->count[len]) << 1;
			code <<= 1;
		}
		if (len > XP_MAX_BITS)
			return -EINVAL;         /* cannot happen with a complete code */
		*sym = c->sorted[idx + (code - first)];
	}
	return xp_consume(in, len);
}

long xpress_huffman_decompress(const unsigned char *in_p, size_t in_len,
    unsigned char *out, size_t out_len)
{
	struct xp_code code;
	struct xp_in in = { .r = bytes_reader(in_p, in_len) };
	size_t opos = 0;

	if (out_len > (size_t)LONG_MAX)
		return -EINVAL;
	while (opos < out_len) {
		const unsigned char *table;
		size_t block_end;

		/* A block: its table, then two words into the register. */
		table = bytes_take(&in.r, XP_TABLE_LEN);
		if (!table || xp_build(&code, table) < 0)
			return -EINVAL;
		in.bits = 0;
		in.phantom = 0;
		in.extra = -16;
		xp_refill(&in);         /* bits 31..16; extra becomes 0 */
		xp_refill(&in);         /* bits 15..0; extra becomes 16 */

		block_end = out_len - opos > XP_BLOCK ? opos + XP_BLOCK : out_len;
		while (opos < block_end) {
			unsigned sym, dbits;
			uint32_t len, dist;

			if (xp_symbol(&in, &code, &sym) < 0)
				return -EINVAL;
			if (sym < 256) {
				out[opos++] = (unsigned char)sym;
				continue;
			}
			sym -= 256;
			len = sym & 15;
			dbits = sym >> 4;
			if (len == 15) {
				uint32_t v = bytes_u8(&in.r);

				if (v == 255) {
					v = bytes_u16le(&in.r);
					if (v == 0)
						v = bytes_u32le(&in.r);
					else if (v < 15)
						return -EINVAL;
					len = v;
				} else {
					len = v + 15;
				}
				if (in.r.bad)
					return -EINVAL;
			}
			dist = 1u << dbits;
			if (dbits)
				dist |= in.bits >> (32 - dbits);
			if (xp_consume(&in, dbits) < 0)
				return -EINVAL;
			/* len + 3 without overflow: compare before adding */
			if (dist > opos || len > out_len - opos || out_len - opos - len < 3)
				return -EINVAL;
			len += 3;
			/* byte by byte: source and destination may overlap */
			for (size_t i = 0; i < len; i++, opos++)
				out[opos] = out[opos - dist];
		}
	}
	return (long)out_len;
}

/* ---- WinRM framing ------------------------------------------------------ */

int xpress_winrm_decode(const unsigned char *in, size_t in_len, struct buf *out)
{
	struct bytes_reader rd = bytes_reader(in, in_len);
	size_t start = out->len;
	unsigned char *tmp = NULL;
	int r = 0;

	while (bytes_left(&rd)) {
		const unsigned char *chunk;
		size_t orig, comp;

		orig = (size_t)bytes_u16le(&rd) + 1;
		comp = (size_t)bytes_u16le(&rd) + 1;
		chunk = bytes_take(&rd, comp);
		if (!chunk) {
			r = -EINVAL;
			break;
		}
		if (orig == comp) {
			r = buf_append(out, chunk, orig);
		} else {
			if (out->limit && (out->len > out->limit || out->limit - out->len < orig)) {
				r = -EMSGSIZE;
				break;
			}
			if (!tmp)
				tmp = xmalloc(XPRESS_WINRM_CHUNK);
			if (xpress_huffman_decompress(chunk, comp, tmp, orig) != (long)orig)
				r = -EINVAL;
			else
				r = buf_append(out, tmp, orig);
		}
		if (r < 0)
			break;
	}
	if (tmp)
		freezero(tmp, XPRESS_WINRM_CHUNK);
	if (r < 0)
		out->len = start;
	return r;
}

int xpress_winrm_encode_stored(const unsigned char *in, size_t in_len, struct buf *out)
{
	size_t start = out->len;

	for (size_t pos = 0; pos < in_len;) {
		size_t n = MIN(in_len - pos, (size_t)XPRESS_WINRM_CHUNK);
		unsigned char hdr[4];
		struct bytes_writer w = bytes_writer(hdr, sizeof hdr);
		int r;

		/* A stored chunk: both sizes equal. */
		bytes_put_u16le(&w, (uint16_t)(n - 1));
		bytes_put_u16le(&w, (uint16_t)(n - 1));
		r = buf_append(out, hdr, sizeof hdr);

		if (r == 0)
			r = buf_append(out, in + pos, n);
		if (r < 0) {
			out->len = start;
			return r;
		}
		pos += n;
	}
	return 0;
}
