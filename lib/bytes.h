/*
 * bytes.h - a bounds-checked cursor for reading and writing binary wire
 * formats (NTLM messages, XPRESS streams, PSRP fragments).  Header-only;
 * used by the protocol libraries in the worker (winrmd-net) and by the
 * monitor's NTLM code, with no state outside the cursor itself.
 *
 * One error convention: a sticky flag.  Every read or write checks that
 * it fits before it touches memory; one that does not fit reads or writes
 * nothing, returns 0 (or NULL), and sets `bad`, after which every further
 * call on that cursor fails the same way.  A parser can therefore read a
 * whole fixed header and test `bad` once, turning it into -EINVAL; no
 * value read after the first failure is ever used for anything but being
 * thrown away.  The length check is `n > len - off` with off <= len held
 * invariant, so no offset or length, however close to SIZE_MAX, can wrap.
 *
 * Multi-byte integers are assembled byte by byte, so the buffer needs no
 * alignment and the host's byte order does not matter.
 */
#ifndef WINRMD_BYTES_H
#define WINRMD_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct bytes_reader {
	const unsigned char *p;
	size_t len, off;                /* off <= len always */
	bool bad;
};

struct bytes_writer {
	unsigned char *p;
	size_t cap, off;                /* off <= cap always; off is the length written */
	bool bad;
};

static inline struct bytes_reader bytes_reader(const void *p, size_t len)
{
	/* A NULL buffer can only be an empty one. */
	return (struct bytes_reader){ .p = p, .len = p ? len : 0, .bad = false };
}

static inline size_t bytes_left(const struct bytes_reader *r)
{
	return r->bad ? 0 : r->len - r->off;
}

/* Make r fail unless n more bytes are there; true if they are. */
static inline bool bytes_need(struct bytes_reader *r, size_t n)
{
	if (!r->bad && n > r->len - r->off)
		r->bad = true;
	return !r->bad;
}

/* Move to absolute offset `at` (at == len is the end, and allowed). */
static inline void bytes_at(struct bytes_reader *r, size_t at)
{
	if (!r->bad && at > r->len)
		r->bad = true;
	if (!r->bad)
		r->off = at;
}

static inline void bytes_skip(struct bytes_reader *r, size_t n)
{
	if (bytes_need(r, n))
		r->off += n;
}

/*
 * The next n bytes, in place, or NULL.  A zero-length take succeeds and
 * gives the current position, which is NULL for a NULL buffer: test `bad`,
 * not the pointer, when n may be 0.
 */
static inline const unsigned char *bytes_take(struct bytes_reader *r, size_t n)
{
	const unsigned char *q;

	if (!bytes_need(r, n))
		return NULL;
	q = r->p ? r->p + r->off : NULL;
	r->off += n;
	return q;
}

/* The next n bytes as a reader of their own. */
static inline struct bytes_reader bytes_sub(struct bytes_reader *r, size_t n)
{
	const unsigned char *q = bytes_take(r, n);
	struct bytes_reader s = bytes_reader(q, r->bad ? 0 : n);

	s.bad = r->bad;
	return s;
}

static inline void bytes_copy(struct bytes_reader *r, void *dst, size_t n)
{
	const unsigned char *q = bytes_take(r, n);

	if (q && n)
		memcpy(dst, q, n);
}

/* The next byte without moving, or -1 at the end (or after a failure). */
static inline int bytes_peek(const struct bytes_reader *r)
{
	return bytes_left(r) ? r->p[r->off] : -1;
}

static inline uint8_t bytes_u8(struct bytes_reader *r)
{
	const unsigned char *q = bytes_take(r, 1);

	return q ? q[0] : 0;
}

static inline uint16_t bytes_u16le(struct bytes_reader *r)
{
	const unsigned char *q = bytes_take(r, 2);

	return q ? (uint16_t)(q[0] | q[1] << 8) : 0;
}

static inline uint32_t bytes_u32le(struct bytes_reader *r)
{
	const unsigned char *q = bytes_take(r, 4);

	return q ? (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
	    (uint32_t)q[3] << 24 : 0;
}

static inline uint64_t bytes_u64le(struct bytes_reader *r)
{
	const unsigned char *q = bytes_take(r, 8);
	uint64_t v = 0;

	for (int i = 7; q && i >= 0; i--)
		v = v << 8 | q[i];
	return v;
}

static inline uint32_t bytes_u32be(struct bytes_reader *r)
{
	const unsigned char *q = bytes_take(r, 4);

	return q ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 |
	    (uint32_t)q[3] : 0;
}

static inline uint64_t bytes_u64be(struct bytes_reader *r)
{
	const unsigned char *q = bytes_take(r, 8);
	uint64_t v = 0;

	for (int i = 0; q && i < 8; i++)
		v = v << 8 | q[i];
	return v;
}

/* ---- writing into a caller's fixed buffer ------------------------------- */

static inline struct bytes_writer bytes_writer(void *p, size_t cap)
{
	return (struct bytes_writer){ .p = p, .cap = p ? cap : 0, .bad = false };
}

static inline size_t bytes_room(const struct bytes_writer *w)
{
	return w->bad ? 0 : w->cap - w->off;
}

/* Reserve the next n bytes and return them for the caller to fill, or NULL. */
static inline unsigned char *bytes_reserve(struct bytes_writer *w, size_t n)
{
	unsigned char *q;

	if (!w->bad && n > w->cap - w->off)
		w->bad = true;
	if (w->bad)
		return NULL;
	q = w->p ? w->p + w->off : NULL;
	w->off += n;
	return q;
}

static inline void bytes_put(struct bytes_writer *w, const void *src, size_t n)
{
	unsigned char *q = bytes_reserve(w, n);

	if (q && n)
		memcpy(q, src, n);
}

static inline void bytes_zero(struct bytes_writer *w, size_t n)
{
	unsigned char *q = bytes_reserve(w, n);

	if (q && n)
		memset(q, 0, n);
}

static inline void bytes_put_u8(struct bytes_writer *w, uint8_t v)
{
	unsigned char *q = bytes_reserve(w, 1);

	if (q)
		q[0] = v;
}

static inline void bytes_put_u16le(struct bytes_writer *w, uint16_t v)
{
	unsigned char *q = bytes_reserve(w, 2);

	if (q) {
		q[0] = (unsigned char)v;
		q[1] = (unsigned char)(v >> 8);
	}
}

static inline void bytes_put_u32le(struct bytes_writer *w, uint32_t v)
{
	unsigned char *q = bytes_reserve(w, 4);

	for (int i = 0; q && i < 4; i++)
		q[i] = (unsigned char)(v >> (8 * i));
}

static inline void bytes_put_u64le(struct bytes_writer *w, uint64_t v)
{
	unsigned char *q = bytes_reserve(w, 8);

	for (int i = 0; q && i < 8; i++)
		q[i] = (unsigned char)(v >> (8 * i));
}

static inline void bytes_put_u32be(struct bytes_writer *w, uint32_t v)
{
	unsigned char *q = bytes_reserve(w, 4);

	for (int i = 0; q && i < 4; i++)
		q[i] = (unsigned char)(v >> (24 - 8 * i));
}

static inline void bytes_put_u64be(struct bytes_writer *w, uint64_t v)
{
	unsigned char *q = bytes_reserve(w, 8);

	for (int i = 0; q && i < 8; i++)
		q[i] = (unsigned char)(v >> (56 - 8 * i));
}

#endif
