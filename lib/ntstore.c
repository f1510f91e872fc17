/*
 * ntstore.c - read and rewrite the NT hash store (monitor, winrmctl).
 *
 * The whole file is read into memory (it is small) and wiped after use;
 * updates go to a temporary file in the same directory, renamed over.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "ntstore.h"
#include "util.h"

static int read_store(const char *path, struct buf *b)
{
	struct stat st;
	char chunk[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf_init(b, NTSTORE_MAX_FILE);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 077)) {
		close(fd);
		return -EPERM;
	}
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		if (buf_append(b, chunk, (size_t)n) < 0) {
			close(fd);
			wipe(chunk, sizeof chunk);
			buf_free_secret(b);
			return -EFBIG;
		}
	wipe(chunk, sizeof chunk);
	close(fd);
	buf_str(b);
	return n < 0 ? -EIO : 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -EINVAL;
}

/* Iterate over "user:hex" lines; fn returns non-zero to stop. */
static int each_line(struct buf *b, int (*fn)(const char *user, size_t ulen, const char *hex, void *d),
    void *d)
{
	char *p = (char *)b->data, *end = p + b->len;

	while (p && p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *colon;
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		colon = memchr(p, ':', len);
		if (colon && (size_t)(p + len - colon - 1) >= 32 && *p != '#') {
			int r = fn(p, (size_t)(colon - p), colon + 1, d);
			if (r)
				return r;
		}
		p = nl ? nl + 1 : NULL;
	}
	return 0;
}

struct find { const char *user; unsigned char *hash; };

static int find_fn(const char *user, size_t ulen, const char *hex, void *d)
{
	struct find *f = d;

	if (ulen != strlen(f->user) || memcmp(user, f->user, ulen))
		return 0;
	for (int i = 0; i < 16; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		f->hash[i] = (unsigned char)(hi << 4 | lo);
	}
	return 1;
}

int ntstore_lookup(const char *path, const char *user, unsigned char hash[16])
{
	struct find f = { user, hash };
	struct buf b;
	int r = read_store(path, &b);

	if (r < 0)
		return r == -ENOENT ? -ENOENT : r;
	r = each_line(&b, find_fn, &f);
	buf_free_secret(&b);
	if (r < 0)
		return r;
	return r == 1 ? 0 : -ENOENT;
}

struct copy { const char *skip; struct buf *out; };

static int copy_fn(const char *user, size_t ulen, const char *hex, void *d)
{
	struct copy *c = d;

	if (ulen == strlen(c->skip) && !memcmp(user, c->skip, ulen))
		return 0;
	buf_append(c->out, user, ulen);
	buf_appends(c->out, ":");
	buf_append(c->out, hex, 32);
	buf_appends(c->out, "\n");
	return 0;
}

int ntstore_update(const char *path, const char *user, const unsigned char *hash)
{
	struct buf in, out;
	struct copy c;
	char tmp[PATH_MAX];
	int fd, r;

	if (!*user || strchr(user, ':') || strchr(user, '\n'))
		return -EINVAL;
	r = read_store(path, &in);
	if (r < 0 && r != -ENOENT)
		return r;
	buf_init(&out, 0);
	c.skip = user;
	c.out = &out;
	if (r == 0)
		each_line(&in, copy_fn, &c);
	buf_free_secret(&in);
	if (hash) {
		buf_appendf(&out, "%s:", user);
		for (int i = 0; i < 16; i++)
			buf_appendf(&out, "%02x", hash[i]);
		buf_appends(&out, "\n");
	}
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fchmod(fd, 0600) < 0 || write(fd, out.data, out.len) != (ssize_t)out.len ||
	    fsync(fd) < 0) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		buf_free_secret(&out);
		return r ? r : -EIO;
	}
	close(fd);
	buf_free_secret(&out);
	return rename(tmp, path) < 0 ? -errno : 0;
}

struct lst { void (*fn)(const char *, void *); void *data; };

static int list_fn(const char *user, size_t ulen, const char *hex, void *d)
{
	struct lst *l = d;
	char name[257];
	(void)hex;

	if (ulen < sizeof name) {
		memcpy(name, user, ulen);
		name[ulen] = '\0';
		l->fn(name, l->data);
	}
	return 0;
}

int ntstore_list(const char *path, void (*fn)(const char *user, void *data), void *data)
{
	struct lst l = { fn, data };
	struct buf b;
	int r = read_store(path, &b);

	if (r < 0)
		return r;
	each_line(&b, list_fn, &l);
	buf_free_secret(&b);
	return 0;
}
