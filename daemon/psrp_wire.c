/*
 * psrp_wire.c - out-of-process packets and PSRP fragments (worker).
 *
 * The packet grammar is PowerShell's own (OutOfProcessUtils): one element
 * per line, attributes in single quotes, in a fixed order.  It is parsed by
 * hand rather than as XML because it is not general XML and a runspace
 * process must not be able to reach libxml2's wider surface this way.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psrp_wire.h"
#include "util.h"

#include "xpress.h"

static uint64_t be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int psrp_fragment_parse(const unsigned char *p, size_t n, struct psrp_fragment *f)
{
	uint32_t len;

	if (n < PSRP_FRAGMENT_HEADER)
		return -EINVAL;
	f->object_id = be64(p);
	f->fragment_id = be64(p + 8);
	f->start = p[16] & 1;
	f->end = (p[16] & 2) != 0;
	len = (uint32_t)p[17] << 24 | (uint32_t)p[18] << 16 | (uint32_t)p[19] << 8 | p[20];
	if (p[16] & ~3u || len > n - PSRP_FRAGMENT_HEADER)
		return -EINVAL;
	f->blob = p + PSRP_FRAGMENT_HEADER;
	f->blob_len = len;
	f->raw = p;
	f->total_len = PSRP_FRAGMENT_HEADER + (size_t)len;
	return 0;
}

uint32_t psrp_msg_type(const unsigned char *b, size_t n)
{
	if (n < 8)
		return 0;
	return (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
}

int psrp_pipeline_state(const unsigned char *msg, size_t n)
{
	static const char key[] = "N=\"PipelineState\">";
	const unsigned char *p;

	if (n <= PSRP_MESSAGE_HEADER)
		return -1;
	p = memmem(msg + PSRP_MESSAGE_HEADER, n - PSRP_MESSAGE_HEADER, key, sizeof key - 1);
	if (!p)
		return -1;
	p += sizeof key - 1;
	if (p >= msg + n || *p < '0' || *p > '9')
		return -1;
	return *p - '0';
}

int psrp_msg_i32(const unsigned char *msg, size_t n, const char *name, int32_t *out)
{
	char key[64];
	const unsigned char *p, *end = msg + n;
	int64_t v = 0;
	int kl = snprintf(key, sizeof key, "<I32 N=\"%s\">", name);

	if (kl <= 0 || (size_t)kl >= sizeof key || n <= PSRP_MESSAGE_HEADER)
		return -EINVAL;
	p = memmem(msg + PSRP_MESSAGE_HEADER, n - PSRP_MESSAGE_HEADER, key, (size_t)kl);
	if (!p)
		return -ENOENT;
	p += kl;
	if (p >= end || *p < '0' || *p > '9')
		return -EINVAL;
	for (; p < end && *p >= '0' && *p <= '9'; p++)
		if ((v = v * 10 + (*p - '0')) > INT32_MAX)
			return -EINVAL;
	if (p >= end || *p != '<')
		return -EINVAL;
	*out = (int32_t)v;
	return 0;
}

static uint32_t le32_at(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

int psrp_pool_info_parse(const unsigned char *p, size_t n, struct psrp_pool_info *out)
{
	struct psrp_fragment f;

	for (size_t off = 0; off < n && psrp_fragment_parse(p + off, n - off, &f) == 0; off += f.total_len) {
		if (!f.start || !f.end || f.blob_len < PSRP_MESSAGE_HEADER ||
		    psrp_msg_type(f.blob, f.blob_len) != PSRP_INIT_RUNSPACEPOOL)
			continue;
		memcpy(out->rpid, f.blob + 8, 16);
		if (psrp_msg_i32(f.blob, f.blob_len, "MinRunspaces", &out->min_runspaces) < 0 ||
		    psrp_msg_i32(f.blob, f.blob_len, "MaxRunspaces", &out->max_runspaces) < 0)
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

int psrp_connect_parse(const unsigned char *p, size_t n, struct psrp_connect_req *out)
{
	static const uint32_t want[2] = { PSRP_SESSION_CAPABILITY, PSRP_CONNECT_RUNSPACEPOOL };
	struct psrp_fragment f[2];
	size_t off = 0;
	int r1, r2;

	for (int i = 0; i < 2; i++) {
		if (off >= n || psrp_fragment_parse(p + off, n - off, &f[i]) < 0 || !f[i].start || !f[i].end ||
		    f[i].blob_len < PSRP_MESSAGE_HEADER || le32_at(f[i].blob) != PSRP_DEST_SERVER ||
		    psrp_msg_type(f[i].blob, f[i].blob_len) != want[i])
			return -EINVAL;
		off += f[i].total_len;
	}
	if (off != n)
		return -EINVAL;
	memcpy(out->rpid, f[1].blob + 8, 16);
	r1 = psrp_msg_i32(f[1].blob, f[1].blob_len, "MinRunspaces", &out->min_runspaces);
	r2 = psrp_msg_i32(f[1].blob, f[1].blob_len, "MaxRunspaces", &out->max_runspaces);
	if ((r1 == -EINVAL || r2 == -EINVAL) || (r1 == 0) != (r2 == 0))
		return -EINVAL;
	out->sizes = r1 == 0;
	return 0;
}

void psrp_put_fragment(struct buf *out, uint64_t object_id, const unsigned char *msg, size_t len)
{
	unsigned char h[PSRP_FRAGMENT_HEADER];

	for (int i = 0; i < 8; i++) {
		h[i] = (unsigned char)(object_id >> (56 - 8 * i));
		h[8 + i] = 0;                           /* fragment id 0 */
	}
	h[16] = 3;                                      /* start and end */
	for (int i = 0; i < 4; i++)
		h[17 + i] = (unsigned char)(len >> (24 - 8 * i));
	buf_append(out, h, sizeof h);
	buf_append(out, msg, len);
}

void psrp_put_message(struct buf *out, uint64_t object_id, uint32_t type,
    const unsigned char rpid[16], const char *xml)
{
	size_t xl = strlen(xml);
	unsigned char *m = xmalloc(PSRP_MESSAGE_HEADER + 3 + xl);

	for (int i = 0; i < 4; i++) {
		m[i] = (unsigned char)(PSRP_DEST_CLIENT >> (8 * i));
		m[4 + i] = (unsigned char)(type >> (8 * i));
	}
	memcpy(m + 8, rpid, 16);
	memset(m + 24, 0, 16);                          /* no pipeline */
	memcpy(m + 40, "\xef\xbb\xbf", 3);              /* UTF-8 BOM, as PowerShell writes */
	memcpy(m + 43, xml, xl);
	psrp_put_fragment(out, object_id, m, PSRP_MESSAGE_HEADER + 3 + xl);
	free(m);
}

static const struct { const char *name; int kind; } oop_names[] = {
	{ "Data", OOP_DATA }, { "DataAck", OOP_DATA_ACK }, { "Command", OOP_COMMAND },
	{ "CommandAck", OOP_COMMAND_ACK }, { "Signal", OOP_SIGNAL }, { "SignalAck", OOP_SIGNAL_ACK },
	{ "Close", OOP_CLOSE }, { "CloseAck", OOP_CLOSE_ACK },
};

/* Expect `lit` at *p (within end); advance past it. */
static bool lit(const char **p, const char *end, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(end - *p) < n || memcmp(*p, s, n))
		return false;
	*p += n;
	return true;
}

static bool attr(const char **p, const char *end, const char *name, char *out, size_t outlen)
{
	const char *q;
	size_t n;

	while (*p < end && **p == ' ')
		(*p)++;
	if (!lit(p, end, name) || !lit(p, end, "='"))
		return false;
	q = memchr(*p, '\'', (size_t)(end - *p));
	if (!q || (n = (size_t)(q - *p)) >= outlen)
		return false;
	memcpy(out, *p, n);
	out[n] = '\0';
	*p = q + 1;
	return true;
}

int oop_parse(const char *line, size_t len, struct oop_packet *out)
{
	const char *p = line, *end = line + len, *name;
	char stream[32];
	size_t nl;

	memset(out, 0, sizeof *out);
	if (!lit(&p, end, "<"))
		return -EINVAL;
	name = p;
	while (p < end && *p != ' ' && *p != '>' && *p != '/')
		p++;
	nl = (size_t)(p - name);
	out->kind = -1;
	for (size_t i = 0; i < ARRAY_SIZE(oop_names); i++)
		if (strlen(oop_names[i].name) == nl && !memcmp(name, oop_names[i].name, nl))
			out->kind = oop_names[i].kind;
	if (out->kind < 0)
		return -EINVAL;
	if (out->kind == OOP_DATA) {
		if (!attr(&p, end, "Stream", stream, sizeof stream))
			return -EINVAL;
		out->prompt_response = str_ieq(stream, "PromptResponse");
		if (!out->prompt_response && !str_ieq(stream, "Default"))
			return -EINVAL;
	}
	if (!attr(&p, end, "PSGuid", out->guid, sizeof out->guid) || !uuid_valid(out->guid))
		return -EINVAL;
	if (out->kind == OOP_DATA) {
		const char *close;
		if (!lit(&p, end, ">"))
			return -EINVAL;
		close = end - 7;
		if (close < p || memcmp(close, "</Data>", 7))
			return -EINVAL;
		out->data = p;
		out->data_len = (size_t)(close - p);
		return 0;
	}
	while (p < end && *p == ' ')
		p++;
	if (!lit(&p, end, "/>") || p != end)
		return -EINVAL;
	return 0;
}

int psrp_b64_compact(char *s)
{
	char *w = s;
	size_t n;
	unsigned char *tmp;
	long r;

	for (char *r2 = s; *r2; r2++)
		if (*r2 != ' ' && *r2 != '\t' && *r2 != '\r' && *r2 != '\n')
			*w++ = *r2;
	*w = '\0';
	n = strlen(s);
	tmp = xmalloc(b64_decoded_max(n) + 1);
	r = b64_decode(s, n, tmp, b64_decoded_max(n));
	free(tmp);
	return r < 0 ? -EINVAL : 0;
}

char *psrp_xpress_b64(const char *b64)
{
	size_t n = strlen(b64);
	unsigned char *bin = xmalloc(b64_decoded_max(n) + 1);
	long bl = b64_decode(b64, n, bin, b64_decoded_max(n));
	struct buf out;
	char *res = NULL;

	buf_init(&out, 64 * 1024 * 1024);
	if (bl >= 0 && xpress_winrm_decode(bin, (size_t)bl, &out) == 0)
		res = b64_encode(out.data ? out.data : (unsigned char *)"", out.len);
	buf_free(&out);
	free(bin);
	return res;
}
