/*
 * util.h - small shared helpers: growable buffers, base64, secrets, ids.
 *
 * Used by every process.  Allocation failure is fatal (xmalloc & co): a
 * daemon that cannot allocate a few bytes cannot answer anyone correctly.
 */
#ifndef WINRMD_UTIL_H
#define WINRMD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <systemd/sd-event.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Overwrite and free; for anything that held a password, key or token. */
void wipe(void *p, size_t n);
void freezero(void *p, size_t n);
void free_secret_str(char *s);
/* Constant-time equality of two equal-length byte strings. */
bool ct_equal(const void *a, const void *b, size_t n);

/* A growable byte buffer; `limit` (0 = none) bounds its length. */
struct buf {
	unsigned char *data;
	size_t len, cap, limit;
};
void buf_init(struct buf *b, size_t limit);
int buf_append(struct buf *b, const void *p, size_t n);   /* -EMSGSIZE past limit */
int buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_appends(struct buf *b, const char *s);
void buf_consume(struct buf *b, size_t n);                /* drop n bytes from the front */
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
void buf_free_secret(struct buf *b);
/* NUL-terminate (not counted in len) and return data as a string. */
char *buf_str(struct buf *b);

/*
 * Base64 per RFC 4648.  Decoding skips ASCII whitespace anywhere (Ruby's
 * client wraps lines every 60 characters) and rejects everything else that
 * is not in the alphabet.  Returns the decoded length or -EINVAL.
 */
long b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap);
size_t b64_decoded_max(size_t inlen);
char *b64_encode(const void *in, size_t n);               /* malloc'ed, NUL-terminated */
size_t b64_encode_into(const void *in, size_t n, char *out); /* out >= 4*((n+2)/3)+1 */

/* Random bytes from the kernel; fatal on failure. */
void random_bytes(void *p, size_t n);
/* A random (v4) UUID in upper case, "XXXXXXXX-XXXX-..." (37 bytes incl. NUL). */
void uuid_upper(char out[37]);
/* true if s is a UUID in any case (8-4-4-4-12 hex). */
bool uuid_valid(const char *s);

/* Replace every byte that is not part of valid UTF-8 with '?', in place. */
void utf8_sanitize(char *s);

/* Case-insensitive ASCII compare, and trimmed copies. */
bool str_ieq(const char *a, const char *b);
bool str_iprefix(const char *s, const char *prefix);
char *str_trim(char *s);

/* Parse an unsigned decimal in [min, max]; -EINVAL / -ERANGE. */
int parse_uint(const char *s, unsigned long long min, unsigned long long max,
    unsigned long long *out);

/* Monotonic clock in milliseconds. */
uint64_t now_ms(void);

/* Set O_NONBLOCK / FD_CLOEXEC. */
int fd_nonblock(int fd, bool on);

/*
 * `_cleanup_free_ char *p = NULL;` frees p on every way out of its scope,
 * as systemd's code does, instead of a free() before each return.
 */
static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ __attribute__((cleanup(freep)))

/* A signal source the loop owns, named for sd-event's debug output; <0 errno. */
int ev_add_signal(sd_event *e, int sig, sd_event_signal_handler_t cb, const char *name);
int fd_cloexec(int fd, bool on);
void close_safe(int *fd);

#endif
