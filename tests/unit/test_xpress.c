/*
 * test_xpress.c - unit tests for lib/xpress.c, included by unit.c (which
 * provides CHECK and CHECK_MEM and registers XPRESS_TESTS).
 *
 * Known answers: the two LZ77+Huffman examples of MS-XCA 3.2 ("abcdefghij
 * klmnopqrstuvwxyz", all literals; and "abc" x 100, one 297-byte match with
 * the two-level length escape).  Everything else round-trips through a tiny
 * reference compressor below (greedy LZ77, a simple but complete prefix code
 * per 64 KiB block, optionally skewed to get 15-bit codes) or is cut from
 * those streams to be malformed.  The compressor exists only here.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "xpress.h"

/* ---- MS-XCA 3.2 examples ------------------------------------------------ */

/* "abcdefghijklmnopqrstuvwxyz" (26 bytes): lengths 5 for a-v, 4 for w-z and
 * for EOF (symbol 256), then the bit stream and 4 bytes of padding. */
static const unsigned char xpt_ex1[276] = {
	[48] = 0x50, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
	0x55, 0x55, 0x55, 0x45, 0x44, 0x04,
	[128] = 0x04,
	[256] = 0xd8, 0x52, 0x3e, 0xd7, 0x94, 0x11, 0x5b, 0xe9,
	0x19, 0x5f, 0xf9, 0xd6, 0x7c, 0xdf, 0x8d, 0x04,
	0x00, 0x00, 0x00, 0x00,
};

/* "abc" x 100 (300 bytes): c, EOF and 287 (match, distance 2-3, long
 * length) get 2 bits, a and b 3; then a b c 287 <dist bit> EOF, and the raw
 * length bytes ff 26 01 (0x0126 + 3 = 297) between the bit-stream words. */
static const unsigned char xpt_ex2[263] = {
	[48] = 0x30, 0x23,
	[128] = 0x02,
	[143] = 0x20,
	[256] = 0xa8, 0xdc, 0x00, 0x00, 0xff, 0x26, 0x01,
};

static const char xpt_ex1_plain[] = "abcdefghijklmnopqrstuvwxyz";

static void xpt_ex2_plain(unsigned char out[300])
{
	for (size_t i = 0; i < 300; i++)
		out[i] = (unsigned char)("abc"[i % 3]);
}

/* ---- a tiny reference compressor (tests only) ---------------------------- */

static uint64_t xpt_rng_state = 0x243f6a8885a308d3ULL;

static uint32_t xpt_rng(void)
{
	xpt_rng_state ^= xpt_rng_state << 13;
	xpt_rng_state ^= xpt_rng_state >> 7;
	xpt_rng_state ^= xpt_rng_state << 17;
	return (uint32_t)(xpt_rng_state >> 32);
}

/* A token: a literal (len == 0) or a match of len bytes, dist back. */
struct xpt_tok {
	uint32_t len, dist;
	unsigned char lit;
};

struct xpt_enc {
	unsigned char *out;
	size_t len, cap;
	uint16_t words[65536];          /* this block's bit-stream words */
	size_t slots[65536];            /* where each word goes in out */
	size_t nslots;
	size_t nbits;                   /* bits written in this block */
	uint16_t code[512];
	unsigned char clen[512];
};

static void xpt_put(struct xpt_enc *e, const void *p, size_t n)
{
	if (e->len + n > e->cap) {
		e->cap = (e->len + n) * 2 + 1024;
		e->out = realloc(e->out, e->cap);
		if (!e->out)
			abort();
	}
	memcpy(e->out + e->len, p, n);
	e->len += n;
}

/* The decoder holds max(2, ceil(nbits / 16) + 1) words at each step. */
static void xpt_slots_for_now(struct xpt_enc *e)
{
	size_t need = (e->nbits + 15) / 16 + 1;
	static const unsigned char zero[2];

	if (need < 2)
		need = 2;
	while (e->nslots < need) {
		e->slots[e->nslots++] = e->len;
		xpt_put(e, zero, 2);
	}
}

static void xpt_bits(struct xpt_enc *e, uint32_t v, unsigned n)
{
	while (n--) {
		size_t w = e->nbits / 16;

		if (w >= ARRAY_SIZE(e->words))
			abort();
		if (e->nbits % 16 == 0)
			e->words[w] = 0;
		if ((v >> n) & 1)
			e->words[w] |= (uint16_t)(1u << (15 - e->nbits % 16));
		e->nbits++;
	}
}

static void xpt_block_end(struct xpt_enc *e)
{
	xpt_slots_for_now(e);
	for (size_t k = 0; k < e->nslots; k++) {
		uint16_t w = k < (e->nbits + 15) / 16 ? e->words[k] : 0;

		e->out[e->slots[k]] = (unsigned char)(w & 0xff);
		e->out[e->slots[k] + 1] = (unsigned char)(w >> 8);
	}
}

static unsigned xpt_log2(uint32_t v)
{
	unsigned n = 0;

	while (v >>= 1)
		n++;
	return n;
}

static unsigned xpt_sym(const struct xpt_tok *t)
{
	uint32_t l = t->len - 3;

	if (!t->len)
		return t->lit;
	return 256 + 16 * xpt_log2(t->dist) + (l < 15 ? l : 15);
}

/*
 * Code lengths for freq[]: the used symbols by falling frequency, the
 * first `chain` of them get lengths 1, 2, ..., chain, and the rest share the
 * remaining 2^-chain of code space as a balanced code.  Always complete;
 * a lone symbol gets a dummy partner.
 */
static void xpt_lengths(struct xpt_enc *e, const uint32_t freq[512], unsigned chain)
{
	uint16_t used[512];
	unsigned n = 0, m, k, i;

	memset(e->clen, 0, sizeof e->clen);
	for (unsigned s = 0; s < 512; s++)
		if (freq[s])
			used[n++] = (uint16_t)s;
	if (n < 2)
		used[n++] = used[0] == 0 ? 1 : 0;       /* n was 1 (EOF or data) */
	/* stable sort by falling frequency (insertion: n <= 512) */
	for (i = 1; i < n; i++) {
		uint16_t s = used[i];
		unsigned j = i;

		while (j > 0 && freq[used[j - 1]] < freq[s]) {
			used[j] = used[j - 1];
			j--;
		}
		used[j] = s;
	}
	if (chain > 6)
		chain = 6;
	if (chain > n - 1)
		chain = n - 1;
	for (i = 0; i < chain; i++)
		e->clen[used[i]] = (unsigned char)(i + 1);
	m = n - chain;
	k = 0;
	while ((1u << k) < m)
		k++;
	/* (2^k - m) symbols at depth chain + k - 1, the others at chain + k */
	for (i = 0; i < m; i++)
		e->clen[used[chain + i]] = (unsigned char)(chain + k - (i < (1u << k) - m ? 1 : 0));

	/* canonical codes: by length, then by symbol */
	{
		unsigned count[16] = { 0 }, next[16];
		unsigned c = 0;

		for (unsigned s = 0; s < 512; s++)
			count[e->clen[s]]++;
		count[0] = 0;
		for (unsigned l = 1; l < 16; l++) {
			c = (c + count[l - 1]) << 1;
			next[l] = c;
		}
		for (unsigned s = 0; s < 512; s++)
			if (e->clen[s])
				e->code[s] = (uint16_t)next[e->clen[s]]++;
	}
}

/*
 * Encode tokens covering n bytes of output as an LZ77+Huffman stream, a new
 * table every 65536 bytes of output (a match may run over a block's end).
 * Returns a malloc'ed stream and its length in *out_len.
 */
static unsigned char *xpt_encode(const struct xpt_tok *tok, size_t ntok, unsigned chain,
    size_t *out_len)
{
	struct xpt_enc *e = calloc(1, sizeof *e);
	size_t i = 0, opos = 0;

	if (!e)
		abort();
	do {
		uint32_t freq[512] = { 0 };
		size_t j = i, p = opos;
		unsigned char table[256] = { 0 };

		while (j < ntok && p < opos + 65536) {
			freq[xpt_sym(&tok[j])]++;
			p += tok[j].len ? tok[j].len : 1;
			j++;
		}
		if (j == ntok)
			freq[256]++;                    /* EOF */
		xpt_lengths(e, freq, chain);
		for (unsigned s = 0; s < 512; s++)
			table[s / 2] |= (unsigned char)(e->clen[s] << (s % 2 * 4));
		xpt_put(e, table, sizeof table);
		e->nslots = 0;
		e->nbits = 0;
		xpt_slots_for_now(e);
		for (; i < j; i++) {
			const struct xpt_tok *t = &tok[i];
			unsigned s = xpt_sym(t);

			xpt_bits(e, e->code[s], e->clen[s]);
			if (!t->len) {
				opos++;
				continue;
			}
			if (t->len - 3 >= 15) {
				uint32_t l = t->len - 3;
				unsigned char b[7];

				xpt_slots_for_now(e);
				if (l - 15 < 255) {
					b[0] = (unsigned char)(l - 15);
					xpt_put(e, b, 1);
				} else if (l <= 0xffff) {
					b[0] = 255;
					b[1] = (unsigned char)(l & 0xff);
					b[2] = (unsigned char)(l >> 8);
					xpt_put(e, b, 3);
				} else {
					b[0] = 255;
					b[1] = b[2] = 0;
					for (unsigned q = 0; q < 4; q++)
						b[3 + q] = (unsigned char)(l >> (8 * q));
					xpt_put(e, b, 7);
				}
			}
			xpt_bits(e, t->dist - (1u << xpt_log2(t->dist)), xpt_log2(t->dist));
			opos += t->len;
		}
		if (i == ntok)
			xpt_bits(e, e->code[256], e->clen[256]);
		xpt_block_end(e);
	} while (i < ntok);

	{
		unsigned char *r = e->out;

		*out_len = e->len;
		free(e);
		return r;
	}
}

/* Greedy LZ77 over data: one hash candidate per position.  Matches are
 * capped at max_len and max_dist, and kept inside 64 KiB blocks unless
 * cross is set. */
static struct xpt_tok *xpt_tokenize(const unsigned char *d, size_t n, uint32_t max_len,
    uint32_t max_dist, bool cross, size_t *ntok)
{
	struct xpt_tok *tok = malloc((n + 1) * sizeof *tok);
	long *head = malloc((1u << 16) * sizeof *head);
	size_t k = 0, i = 0;

	if (!tok || !head)
		abort();
	for (size_t h = 0; h < (1u << 16); h++)
		head[h] = -1;
	while (i < n) {
		size_t best = 0, cand = 0;

		if (i + 3 <= n) {
			unsigned h = ((unsigned)d[i] * 2654435761u ^ (unsigned)d[i + 1] << 8 ^ d[i + 2]) & 0xffff;
			long c = head[h];

			head[h] = (long)i;
			if (c >= 0 && i - (size_t)c <= max_dist) {
				size_t lim = n - i;

				if (lim > max_len)
					lim = max_len;
				if (!cross && lim > 65536 - i % 65536)
					lim = 65536 - i % 65536;
				while (best < lim && d[(size_t)c + best] == d[i + best])
					best++;
				cand = i - (size_t)c;
			}
		}
		if (best >= 3) {
			tok[k].len = (uint32_t)best;
			tok[k].dist = (uint32_t)cand;
			tok[k++].lit = 0;
			i += best;
		} else {
			tok[k].len = 0;
			tok[k].dist = 0;
			tok[k++].lit = d[i++];
		}
	}
	free(head);
	*ntok = k;
	return tok;
}

/* Compress, decompress, compare; true if the round trip holds. */
static bool xpt_round_trip(const unsigned char *d, size_t n, uint32_t max_len, bool cross,
    unsigned chain)
{
	size_t ntok, clen;
	struct xpt_tok *tok = xpt_tokenize(d, n, max_len, 65535, cross, &ntok);
	unsigned char *c = xpt_encode(tok, ntok, chain, &clen);
	unsigned char *out = malloc(n ? n : 1);
	bool ok;

	if (!out)
		abort();
	ok = xpress_huffman_decompress(c, clen, out, n) == (long)n && memcmp(out, d, n) == 0;
	free(out);
	free(c);
	free(tok);
	return ok;
}

/* ---- the tests ------------------------------------------------------------ */

static void test_xpress_spec_examples(void)
{
	unsigned char out[300], want[300];

	memset(out, 0xee, sizeof out);
	CHECK(xpress_huffman_decompress(xpt_ex1, sizeof xpt_ex1, out, 26) == 26);
	CHECK_MEM(out, xpt_ex1_plain, 26);

	xpt_ex2_plain(want);
	memset(out, 0xee, sizeof out);
	CHECK(xpress_huffman_decompress(xpt_ex2, sizeof xpt_ex2, out, 300) == 300);
	CHECK_MEM(out, want, 300);

	/* Our reference compressor encodes the second example the same way
	 * (same tokens; its code differs, so not the same bytes). */
	{
		struct xpt_tok tok[4] = { { 0, 0, 'a' }, { 0, 0, 'b' }, { 0, 0, 'c' }, { 297, 3, 0 } };
		size_t clen;
		unsigned char *c = xpt_encode(tok, 4, 0, &clen);

		memset(out, 0, sizeof out);
		CHECK(xpress_huffman_decompress(c, clen, out, 300) == 300);
		CHECK_MEM(out, want, 300);
		free(c);
	}
	/* Nothing to produce: success without reading anything. */
	CHECK(xpress_huffman_decompress(NULL, 0, out, 0) == 0);
	/* A shorter output is a prefix (decoding stops when out is full). */
	CHECK(xpress_huffman_decompress(xpt_ex1, sizeof xpt_ex1, out, 10) == 10);
	CHECK_MEM(out, xpt_ex1_plain, 10);
}

static void test_xpress_truncated(void)
{
	unsigned char out[300];

	/* The first example reads 126 bits, 8 words after the table: the
	 * padding may go, a byte of the bits may not. */
	for (size_t n = 0; n < sizeof xpt_ex1; n++) {
		long r = xpress_huffman_decompress(xpt_ex1, n, out, 26);

		CHECK(r == (n >= 256 + 16 ? 26 : -EINVAL));
	}
	/* The second needs every byte (the raw length comes last). */
	for (size_t n = 0; n < sizeof xpt_ex2; n++)
		CHECK(xpress_huffman_decompress(xpt_ex2, n, out, 300) == -EINVAL);
}

static void test_xpress_bad_table(void)
{
	unsigned char s[sizeof xpt_ex1], out[26];

	/* All lengths zero: no code at all. */
	memset(s, 0, sizeof s);
	CHECK(xpress_huffman_decompress(s, sizeof s, out, 26) == -EINVAL);

	/* Over-subscribed: one more 1-bit code on top of a complete code. */
	memcpy(s, xpt_ex1, sizeof s);
	s[0] = 0x01;
	CHECK(xpress_huffman_decompress(s, sizeof s, out, 26) == -EINVAL);

	/* Incomplete: EOF's 4-bit code made 5 bits long leaves a hole. */
	memcpy(s, xpt_ex1, sizeof s);
	s[128] = 0x05;
	CHECK(xpress_huffman_decompress(s, sizeof s, out, 26) == -EINVAL);

	/* A single 1-bit code is incomplete too. */
	memset(s, 0, sizeof s);
	s['0' / 2] = 0x01;
	CHECK(xpress_huffman_decompress(s, sizeof s, out, 1) == -EINVAL);

	/* Two 1-bit codes are complete: '0' literal and EOF. */
	s[128] = 0x01;
	s[256] = 0x00;
	s[257] = 0x00;
	CHECK(xpress_huffman_decompress(s, 260, out, 16) == 16);
	CHECK_MEM(out, "0000000000000000", 16);
	/* ...but the 17th bit is not in the input. */
	CHECK(xpress_huffman_decompress(s, 258, out, 17) == -EINVAL);
}

static void test_xpress_bad_match(void)
{
	unsigned char out[64], want[300];
	size_t clen;
	unsigned char *c;

	/* A match first thing: nothing to copy from. */
	{
		struct xpt_tok tok[1] = { { 3, 1, 0 } };

		c = xpt_encode(tok, 1, 0, &clen);
		CHECK(xpress_huffman_decompress(c, clen, out, 3) == -EINVAL);
		free(c);
	}
	/* One byte back from position 1 is fine, two is before the start. */
	{
		struct xpt_tok tok[2] = { { 0, 0, 'a' }, { 5, 1, 0 } };

		c = xpt_encode(tok, 2, 0, &clen);
		CHECK(xpress_huffman_decompress(c, clen, out, 6) == 6);
		CHECK_MEM(out, "aaaaaa", 6);
		free(c);
		tok[1].dist = 2;
		c = xpt_encode(tok, 2, 0, &clen);
		CHECK(xpress_huffman_decompress(c, clen, out, 6) == -EINVAL);
		free(c);
	}
	/* Output overflow: the 297-byte match ends past a 299-byte output,
	 * and after 300 bytes the EOF symbol is a 3-byte match, too long
	 * for 301. */
	{
		unsigned char big[400];

		xpt_ex2_plain(want);
		CHECK(xpress_huffman_decompress(xpt_ex2, sizeof xpt_ex2, big, 299) == -EINVAL);
		CHECK(xpress_huffman_decompress(xpt_ex2, sizeof xpt_ex2, big, 301) == -EINVAL);
		CHECK(xpress_huffman_decompress(xpt_ex2, sizeof xpt_ex2, big, 303) == 303);
		CHECK_MEM(big, want, 300);
		CHECK_MEM(big + 300, "ccc", 3);
	}
	/* The long-length escape: a 16-bit length under 15 is invalid. */
	{
		unsigned char s[sizeof xpt_ex2], big[300];

		memcpy(s, xpt_ex2, sizeof s);
		s[261] = 14;
		s[262] = 0;
		CHECK(xpress_huffman_decompress(s, sizeof s, big, 300) == -EINVAL);
		s[261] = 15;        /* length 18: "abc" + 18 = 21 bytes, then EOF = 3 more */
		CHECK(xpress_huffman_decompress(s, sizeof s, big, 21) == 21);
		CHECK_MEM(big, want, 21);
		s[261] = 0;         /* 16-bit 0: a 32-bit length follows, not here */
		CHECK(xpress_huffman_decompress(s, sizeof s, big, 300) == -EINVAL);
	}
}

static void test_xpress_round_trip(void)
{
	size_t n = 200000;
	unsigned char *d = malloc(n);
	static const char *const words[] = { "Get-Process ", "| ", "Where-Object ", "{ $_.CPU -gt 10 } ",
		"<Obj RefId=\"0\">", "<MS>", "</MS></Obj>", "\r\n", "Invoke-Command ", "x" };

	if (!d)
		abort();
	/* Small sizes, every code shape. */
	for (size_t len = 0; len <= 40; len++) {
		for (size_t i = 0; i < len; i++)
			d[i] = (unsigned char)(xpt_rng() % 4 + 'a');
		for (unsigned chain = 0; chain <= 6; chain++)
			CHECK(xpt_round_trip(d, len, 65538, false, chain));
	}
	/* Random bytes: literals, balanced 8-9 bit codes. */
	for (size_t i = 0; i < 5000; i++)
		d[i] = (unsigned char)xpt_rng();
	CHECK(xpt_round_trip(d, 5000, 65538, false, 0));
	/* Text-like: many matches; the skewed code reaches 15-bit codes. */
	for (size_t i = 0; i < n;) {
		const char *w = words[xpt_rng() % ARRAY_SIZE(words)];
		size_t l = strlen(w);

		if (l > n - i)
			l = n - i;
		memcpy(d + i, w, l);
		i += l;
	}
	for (unsigned chain = 0; chain <= 6; chain += 3) {
		CHECK(xpt_round_trip(d, 30000, 65538, false, chain));
		CHECK(xpt_round_trip(d, n, 65538, false, chain));      /* 4 blocks */
		CHECK(xpt_round_trip(d, n, 65538, true, chain));
		CHECK(xpt_round_trip(d, n, 20, false, chain));         /* short lengths only */
	}
	/* Far matches: 40000 random bytes twice (distance 40000, 15 extra bits). */
	for (size_t i = 0; i < 40000; i++)
		d[i] = (unsigned char)xpt_rng();
	memcpy(d + 40000, d, 40000);
	CHECK(xpt_round_trip(d, 80000, 65538, false, 0));
	CHECK(xpt_round_trip(d, 80000, 65538, true, 2));
	/* Block edges and the longest matches. */
	memset(d, 'x', n);
	for (size_t len = 65534; len <= 65539; len++) {
		CHECK(xpt_round_trip(d, len, 65538, false, 0));
		CHECK(xpt_round_trip(d, len, 65538, true, 0));
	}
	CHECK(xpt_round_trip(d, 131072, 65538, false, 1));
	CHECK(xpt_round_trip(d, 131073, 65538, true, 1));
	/* A match running 2 bytes over the first block's end, then a second
	 * block: its table starts after the first block's last word. */
	{
		struct xpt_tok tok[3] = { { 0, 0, 'x' }, { 65537, 1, 0 }, { 0, 0, 'y' } };
		size_t clen;
		unsigned char *c = xpt_encode(tok, 3, 0, &clen);
		unsigned char *out = malloc(65539);

		if (!out)
			abort();
		d[65538] = 'y';
		CHECK(xpress_huffman_decompress(c, clen, out, 65539) == 65539);
		CHECK_MEM(out, d, 65539);
		/* Without the second table the second block is malformed. */
		CHECK(xpress_huffman_decompress(c, clen - 260, out, 65539) == -EINVAL);
		free(out);
		free(c);
		d[65538] = 'x';
	}
	/* The 32-bit length form (after a 16-bit 0), 100000 bytes at once. */
	{
		struct xpt_tok tok[2] = { { 0, 0, 'x' }, { 99999, 1, 0 } };
		size_t clen;
		unsigned char *c = xpt_encode(tok, 2, 0, &clen);
		unsigned char *out = malloc(100000);

		if (!out)
			abort();
		CHECK(xpress_huffman_decompress(c, clen, out, 100000) == 100000);
		CHECK_MEM(out, d, 100000);
		CHECK(xpress_huffman_decompress(c, clen, out, 99999) == -EINVAL);
		free(out);
		free(c);
	}
	free(d);
}

/* Every single-bit corruption of the examples either decodes or is -EINVAL. */
static void test_xpress_bit_flips(void)
{
	unsigned char s[sizeof xpt_ex2 > sizeof xpt_ex1 ? sizeof xpt_ex2 : sizeof xpt_ex1];
	unsigned char out[300];
	bool all = true;

	for (size_t i = 0; i < sizeof xpt_ex1 * 8; i++) {
		long r;

		memcpy(s, xpt_ex1, sizeof xpt_ex1);
		s[i / 8] ^= (unsigned char)(1u << (i % 8));
		r = xpress_huffman_decompress(s, sizeof xpt_ex1, out, 26);
		all &= r == 26 || r == -EINVAL;
	}
	for (size_t i = 0; i < sizeof xpt_ex2 * 8; i++) {
		long r;

		memcpy(s, xpt_ex2, sizeof xpt_ex2);
		s[i / 8] ^= (unsigned char)(1u << (i % 8));
		r = xpress_huffman_decompress(s, sizeof xpt_ex2, out, 300);
		all &= r == 300 || r == -EINVAL;
	}
	CHECK(all);
}

/* ---- WinRM chunk framing -------------------------------------------------- */

static void xpt_chunk(struct buf *b, size_t orig, const void *p, size_t comp)
{
	unsigned char h[4] = {
		(unsigned char)((orig - 1) & 0xff), (unsigned char)((orig - 1) >> 8),
		(unsigned char)((comp - 1) & 0xff), (unsigned char)((comp - 1) >> 8),
	};

	buf_append(b, h, 4);
	buf_append(b, p, comp);
}

static void test_xpress_winrm_decode(void)
{
	struct buf in, out;
	unsigned char want[300];

	xpt_ex2_plain(want);
	buf_init(&in, 0);
	buf_init(&out, 0);

	/* One stored chunk. */
	xpt_chunk(&in, 5, "hello", 5);
	CHECK_MEM(in.data, "\x04\x00\x04\x00hello", 9);
	CHECK(xpress_winrm_decode(in.data, in.len, &out) == 0);
	CHECK(out.len == 5 && !memcmp(out.data, "hello", 5));

	/* One compressed chunk: 2b 01 06 01 + the second spec example. */
	buf_reset(&in);
	buf_reset(&out);
	xpt_chunk(&in, 300, xpt_ex2, sizeof xpt_ex2);
	CHECK_MEM(in.data, "\x2b\x01\x06\x01", 4);
	CHECK(xpress_winrm_decode(in.data, in.len, &out) == 0);
	CHECK(out.len == 300 && !memcmp(out.data, want, 300));

	/* Several chunks, stored and compressed, appended after what out has
	 * (a compressed stream longer than its output is still decompressed). */
	buf_reset(&in);
	xpt_chunk(&in, 1, "<", 1);
	xpt_chunk(&in, 26, xpt_ex1, sizeof xpt_ex1);
	xpt_chunk(&in, 300, xpt_ex2, sizeof xpt_ex2);
	xpt_chunk(&in, 1, ">", 1);
	CHECK(xpress_winrm_decode(in.data, in.len, &out) == 0);
	CHECK(out.len == 300 + 1 + 26 + 300 + 1);
	if (out.len == 628) {
		CHECK_MEM(out.data + 300, "<", 1);
		CHECK_MEM(out.data + 301, xpt_ex1_plain, 26);
		CHECK_MEM(out.data + 327, want, 300);
		CHECK_MEM(out.data + 627, ">", 1);
	}

	/* Nothing at all is zero chunks. */
	buf_reset(&out);
	CHECK(xpress_winrm_decode(NULL, 0, &out) == 0 && out.len == 0);

	/* A full 64 KiB compressed chunk from the reference compressor. */
	{
		unsigned char *d = malloc(65536);
		size_t ntok, clen;
		struct xpt_tok *tok;
		unsigned char *c;

		if (!d)
			abort();
		for (size_t i = 0; i < 65536; i++)
			d[i] = (unsigned char)("winrm "[i % 6] + (i % 1000 == 0));
		tok = xpt_tokenize(d, 65536, 65538, 65535, false, &ntok);
		c = xpt_encode(tok, ntok, 0, &clen);
		CHECK(clen < 65536);
		buf_reset(&in);
		buf_reset(&out);
		xpt_chunk(&in, 65536, c, clen);
		CHECK_MEM(in.data, "\xff\xff", 2);
		CHECK(xpress_winrm_decode(in.data, in.len, &out) == 0);
		CHECK(out.len == 65536 && !memcmp(out.data, d, 65536));
		free(c);
		free(tok);
		free(d);
	}
	buf_free(&in);
	buf_free(&out);
}

static void test_xpress_winrm_bad(void)
{
	struct buf in, out;
	unsigned char s[sizeof xpt_ex2];

	buf_init(&in, 0);
	buf_init(&out, 0);
	buf_append(&out, "keep", 4);

	/* Trailing garbage: 1-3 bytes that are not a header, or a header
	 * with no data. */
	xpt_chunk(&in, 5, "hello", 5);
	for (size_t extra = 1; extra <= 4; extra++) {
		struct buf t;

		buf_init(&t, 0);
		buf_append(&t, in.data, in.len);
		buf_append(&t, "\x00\x00\x00\x00", extra);
		CHECK(xpress_winrm_decode(t.data, t.len, &out) == -EINVAL);
		buf_free(&t);
	}
	/* A chunk that claims more data than there is. */
	CHECK(xpress_winrm_decode(in.data, in.len - 1, &out) == -EINVAL);
	CHECK(xpress_winrm_decode(in.data, 3, &out) == -EINVAL);

	/* Compressed chunks: wrong original size either way, bad stream. */
	buf_reset(&in);
	xpt_chunk(&in, 299, xpt_ex2, sizeof xpt_ex2);
	CHECK(xpress_winrm_decode(in.data, in.len, &out) == -EINVAL);
	buf_reset(&in);
	xpt_chunk(&in, 301, xpt_ex2, sizeof xpt_ex2);
	CHECK(xpress_winrm_decode(in.data, in.len, &out) == -EINVAL);
	memcpy(s, xpt_ex2, sizeof s);
	s[48] = 0x33;
	buf_reset(&in);
	xpt_chunk(&in, 5, "hello", 5);
	xpt_chunk(&in, 300, s, sizeof s);
	CHECK(xpress_winrm_decode(in.data, in.len, &out) == -EINVAL);
	/* A compressed chunk too short to hold a table. */
	buf_reset(&in);
	xpt_chunk(&in, 300, xpt_ex2, 200);
	CHECK(xpress_winrm_decode(in.data, in.len, &out) == -EINVAL);

	/* Every failure above left out as it was. */
	CHECK(out.len == 4 && !memcmp(out.data, "keep", 4));

	/* The buffer's limit: -EMSGSIZE, out unchanged, for both kinds. */
	{
		struct buf lim;

		buf_init(&lim, 300);
		buf_append(&lim, "x", 1);
		buf_reset(&in);
		xpt_chunk(&in, 300, xpt_ex2, sizeof xpt_ex2);
		CHECK(xpress_winrm_decode(in.data, in.len, &lim) == -EMSGSIZE);
		CHECK(lim.len == 1);
		buf_reset(&in);
		xpt_chunk(&in, 200, xpt_ex2, 200);  /* stored */
		xpt_chunk(&in, 200, xpt_ex2, 200);
		CHECK(xpress_winrm_decode(in.data, in.len, &lim) == -EMSGSIZE);
		CHECK(lim.len == 1);
		buf_reset(&lim);
		buf_reset(&in);
		xpt_chunk(&in, 300, xpt_ex2, sizeof xpt_ex2);
		CHECK(xpress_winrm_decode(in.data, in.len, &lim) == 0 && lim.len == 300);
		buf_free(&lim);
	}
	buf_free(&in);
	buf_free(&out);
}

static void test_xpress_winrm_encode_stored(void)
{
	static const size_t sizes[] = { 0, 1, 2, 65535, 65536, 65537, 3 * 65536 + 5 };
	size_t n = 3 * 65536 + 5;
	unsigned char *d = malloc(n);

	if (!d)
		abort();
	for (size_t i = 0; i < n; i++)
		d[i] = (unsigned char)xpt_rng();
	for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
		struct buf enc, dec;
		size_t len = sizes[k], chunks = (len + 65535) / 65536;

		buf_init(&enc, 0);
		buf_init(&dec, 0);
		CHECK(xpress_winrm_encode_stored(d, len, &enc) == 0);
		CHECK(enc.len == len + 4 * chunks);
		CHECK(xpress_winrm_decode(enc.data, enc.len, &dec) == 0);
		CHECK(dec.len == len && (len == 0 || !memcmp(dec.data, d, len)));
		if (len >= 65536)
			CHECK_MEM(enc.data, "\xff\xff\xff\xff", 4);
		if (len == 65537)
			CHECK_MEM(enc.data + 4 + 65536, "\x00\x00\x00\x00", 4);
		buf_free(&enc);
		buf_free(&dec);
	}
	/* Past the limit: -EMSGSIZE and nothing appended. */
	{
		struct buf lim;

		buf_init(&lim, 65536);
		buf_append(&lim, "ab", 2);
		CHECK(xpress_winrm_encode_stored(d, 65536, &lim) == -EMSGSIZE);
		CHECK(lim.len == 2);
		CHECK(xpress_winrm_encode_stored(d, 65530, &lim) == 0);
		CHECK(lim.len == 65536);
		buf_free(&lim);
	}
	free(d);
}

#define XPRESS_TESTS \
	X(test_xpress_spec_examples) \
	X(test_xpress_truncated) \
	X(test_xpress_bad_table) \
	X(test_xpress_bad_match) \
	X(test_xpress_round_trip) \
	X(test_xpress_bit_flips) \
	X(test_xpress_winrm_decode) \
	X(test_xpress_winrm_bad) \
	X(test_xpress_winrm_encode_stored)
