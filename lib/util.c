/*
 * util.c - buffers, base64, secrets and ids (all processes).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "log.h"
#include "util.h"

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		fatal("out of memory");
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		fatal("out of memory");
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		fatal("out of memory");
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		fatal("out of memory");
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		fatal("out of memory");
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		fatal("out of memory");
	va_end(ap);
	return p;
}

void wipe(void *p, size_t n)
{
	if (p && n)
		OPENSSL_cleanse(p, n);
}

void freezero(void *p, size_t n)
{
	if (!p)
		return;
	wipe(p, n);
	free(p);
}

void free_secret_str(char *s)
{
	if (s)
		freezero(s, strlen(s));
}

bool ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

void buf_init(struct buf *b, size_t limit)
{
	memset(b, 0, sizeof *b);
	b->limit = limit;
}

static int buf_reserve(struct buf *b, size_t extra)
{
	size_t need, cap;
	unsigned char *n;

	if (extra > SIZE_MAX - b->len - 1)
		return -EMSGSIZE;
	need = b->len + extra;
	if (b->limit && need > b->limit)
		return -EMSGSIZE;
	if (need + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need + 1)
		cap *= 2;
	/* Grow through a fresh block so secrets are never left in a freed one. */
	n = xmalloc(cap);
	if (b->len)
		memcpy(n, b->data, b->len);
	freezero(b->data, b->cap);
	b->data = n;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	int r = buf_reserve(b, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int buf_appends(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_appendf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	r = buf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void buf_reset(struct buf *b) { b->len = 0; }

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_free_secret(struct buf *b)
{
	freezero(b->data, b->cap);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *buf_str(struct buf *b)
{
	if (buf_reserve(b, 0) < 0 || !b->data) {
		/* At the limit with no room for the NUL: reserve ignores limit+1. */
		if (!b->data) {
			b->data = xmalloc(1);
			b->cap = 1;
		}
	}
	b->data[b->len] = '\0';
	return (char *)b->data;
}

static const char b64_alpha[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64_decoded_max(size_t inlen)
{
	return inlen / 4 * 3 + 3;
}

long b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap)
{
	static signed char map[256];
	static bool init;
	uint32_t acc = 0;
	size_t o = 0, nq = 0, pad = 0;

	if (!init) {
		memset(map, -1, sizeof map);
		for (int i = 0; i < 64; i++)
			map[(unsigned char)b64_alpha[i]] = (signed char)i;
		init = true;
	}
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
			if (pad > 2)
				return -EINVAL;
			acc <<= 6;
			nq++;
		} else {
			if (pad || map[c] < 0)
				return -EINVAL;
			acc = (acc << 6) | (uint32_t)map[c];
			nq++;
		}
		if (nq == 4) {
			size_t emit = 3 - pad;
			if (o + emit > outcap)
				return -EMSGSIZE;
			out[o++] = (unsigned char)(acc >> 16);
			if (emit > 1)
				out[o++] = (unsigned char)(acc >> 8);
			if (emit > 2)
				out[o++] = (unsigned char)acc;
			acc = 0;
			nq = 0;
			if (pad)
				pad = 3; /* nothing may follow padding */
		}
	}
	if (nq != 0)
		return -EINVAL;
	return (long)o;
}

size_t b64_encode_into(const void *in, size_t n, char *out)
{
	const unsigned char *p = in;
	size_t o = 0, i = 0;

	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64_alpha[v >> 18];
		out[o++] = b64_alpha[(v >> 12) & 63];
		out[o++] = b64_alpha[(v >> 6) & 63];
		out[o++] = b64_alpha[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		out[o++] = b64_alpha[v >> 18];
		out[o++] = b64_alpha[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64_alpha[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

char *b64_encode(const void *in, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	b64_encode_into(in, n, out);
	return out;
}

void random_bytes(void *p, size_t n)
{
	unsigned char *c = p;

	while (n) {
		ssize_t r = getrandom(c, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fatal("getrandom: %m");
		}
		c += r;
		n -= (size_t)r;
	}
}

/*
 * Every reply carries a fresh MessageID: random bytes are drawn from the
 * kernel a page at a time. A forked child starts with an empty pool so
 * it never repeats its parent's ids.
 */
static unsigned char uuid_pool[4096];
static size_t uuid_left;

static void uuid_pool_forget(void)
{
	explicit_bzero(uuid_pool, sizeof uuid_pool);
	uuid_left = 0;
}

void uuid_upper(char out[37])
{
	static bool hooked;
	static const char hex[] = "0123456789ABCDEF";
	unsigned char *u;
	size_t o = 0;

	if (!hooked) {
		pthread_atfork(NULL, NULL, uuid_pool_forget);
		hooked = true;
	}
	if (uuid_left < 16) {
		random_bytes(uuid_pool, sizeof uuid_pool);
		uuid_left = sizeof uuid_pool;
	}
	u = uuid_pool + sizeof uuid_pool - uuid_left;
	uuid_left -= 16;
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[u[i] >> 4];
		out[o++] = hex[u[i] & 15];
	}
	out[o] = '\0';
	explicit_bzero(u, 16);
}

bool uuid_valid(const char *s)
{
	static const int dash[] = { 8, 13, 18, 23 };
	size_t d = 0;

	if (!s || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (d < 4 && i == dash[d]) {
			if (s[i] != '-')
				return false;
			d++;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

void utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = 0;
		uint32_t cp = 0;

		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) { n = 1; cp = *p & 0x1f; }
		else if ((*p & 0xf0) == 0xe0) { n = 2; cp = *p & 0x0f; }
		else if ((*p & 0xf8) == 0xf0) { n = 3; cp = *p & 0x07; }
		bool ok = n > 0;
		for (size_t i = 1; ok && i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				ok = false;
			else
				cp = cp << 6 | (p[i] & 0x3f);
		}
		/* Overlong forms, surrogates and values past U+10FFFF are not UTF-8 either. */
		if (ok && ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff))
			ok = false;
		if (!ok) {
			*p++ = '?';
			continue;
		}
		p += n + 1;
	}
}

bool str_ieq(const char *a, const char *b)
{
	return a && b && strcasecmp(a, b) == 0;
}

bool str_iprefix(const char *s, const char *prefix)
{
	return s && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

char *str_trim(char *s)
{
	char *e;

	while (*s && isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int parse_uint(const char *s, unsigned long long min, unsigned long long max,
    unsigned long long *out)
{
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int fd_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int fd_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -errno;
	fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
	return fcntl(fd, F_SETFD, fl) < 0 ? -errno : 0;
}

void close_safe(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

int ev_add_signal(sd_event *e, int sig, sd_event_signal_handler_t cb, const char *name)
{
	sd_event_source *s;
	int r = sd_event_add_signal(e, &s, sig, cb, NULL);

	if (r < 0)
		return r;
	sd_event_source_set_description(s, name);
	sd_event_source_set_floating(s, 1);
	sd_event_source_unref(s);
	return 0;
}
