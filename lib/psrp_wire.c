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

#include "bytes.h"
#include "psrp_wire.h"
#include "util.h"

#include "xpress.h"

int psrp_fragment_parse(const unsigned char *p, size_t n, struct psrp_fragment *f)
{
	struct bytes_reader r = bytes_reader(p, n);
	const unsigned char *blob;
	uint64_t object_id, fragment_id;
	uint32_t len;
	uint8_t flags;

	object_id = bytes_u64be(&r);
	fragment_id = bytes_u64be(&r);
	flags = bytes_u8(&r);                   /* bit 0 start, bit 1 end */
	len = bytes_u32be(&r);
	blob = bytes_take(&r, len);
	if (r.bad || flags & ~3u)
		return -EINVAL;
	f->blob = blob;
	f->object_id = object_id;
	f->fragment_id = fragment_id;
	f->start = flags & 1;
	f->end = (flags & 2) != 0;
	f->blob_len = len;
	f->raw = p;
	f->total_len = PSRP_FRAGMENT_HEADER + (size_t)len;
	return 0;
}

/* The message header (MS-PSRP 2.2.1): Destination, MessageType, RPID, PID. */
static int msg_header(const unsigned char *msg, size_t n, uint32_t *dest, uint32_t *type,
    unsigned char rpid[16])
{
	struct bytes_reader r = bytes_reader(msg, n);

	*dest = bytes_u32le(&r);
	*type = bytes_u32le(&r);
	bytes_copy(&r, rpid, 16);
	bytes_skip(&r, 16);
	return r.bad ? -EINVAL : 0;
}

uint32_t psrp_msg_type(const unsigned char *b, size_t n)
{
	struct bytes_reader r = bytes_reader(b, n);
	uint32_t type;

	bytes_skip(&r, 4);
	type = bytes_u32le(&r);
	return r.bad ? 0 : type;
}

/* A reader at the first byte after `key` in a message's body (after its
 * header); false if the body is empty or has no key. */
static bool body_after(const unsigned char *msg, size_t n, const char *key, size_t kl,
    struct bytes_reader *r)
{
	const unsigned char *body, *k;
	size_t bl;

	*r = bytes_reader(msg, n);
	bytes_skip(r, PSRP_MESSAGE_HEADER);
	bl = bytes_left(r);
	body = bytes_take(r, bl);
	if (!body || bl == 0 || !(k = memmem(body, bl, key, kl)))
		return false;
	*r = bytes_reader(body, bl);
	bytes_at(r, (size_t)(k - body) + kl);
	return true;
}

int psrp_pipeline_state(const unsigned char *msg, size_t n)
{
	static const char key[] = "N=\"PipelineState\">";
	struct bytes_reader r;
	int c;

	if (!body_after(msg, n, key, sizeof key - 1, &r))
		return -ENOENT;
	c = bytes_peek(&r);
	return c >= '0' && c <= '9' ? c - '0' : -ENOENT;
}

int psrp_msg_i32(const unsigned char *msg, size_t n, const char *name, int32_t *out)
{
	char key[64];
	struct bytes_reader r;
	int64_t v = 0;
	int c, kl = snprintf(key, sizeof key, "<I32 N=\"%s\">", name);

	if (kl <= 0 || (size_t)kl >= sizeof key || n <= PSRP_MESSAGE_HEADER)
		return -EINVAL;
	if (!body_after(msg, n, key, (size_t)kl, &r))
		return -ENOENT;
	c = bytes_peek(&r);
	if (c < '0' || c > '9')
		return -EINVAL;
	for (; (c = bytes_peek(&r)) >= '0' && c <= '9'; bytes_skip(&r, 1))
		if ((v = v * 10 + (c - '0')) > INT32_MAX)
			return -EINVAL;
	if (c != '<')
		return -EINVAL;
	*out = (int32_t)v;
	return 0;
}

int psrp_pool_info_parse(const unsigned char *p, size_t n, struct psrp_pool_info *out)
{
	struct psrp_fragment f;
	unsigned char rpid[16];
	uint32_t dest, type;

	for (size_t off = 0; off < n && psrp_fragment_parse(p + off, n - off, &f) == 0; off += f.total_len) {
		if (!f.start || !f.end || msg_header(f.blob, f.blob_len, &dest, &type, rpid) < 0 ||
		    type != PSRP_INIT_RUNSPACEPOOL)
			continue;
		memcpy(out->rpid, rpid, 16);
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
	unsigned char rpid[16];
	uint32_t dest, type;
	size_t off = 0;
	int r1, r2;

	for (int i = 0; i < 2; i++) {
		if (off >= n || psrp_fragment_parse(p + off, n - off, &f[i]) < 0 || !f[i].start || !f[i].end ||
		    msg_header(f[i].blob, f[i].blob_len, &dest, &type, rpid) < 0 ||
		    dest != PSRP_DEST_SERVER || type != want[i])
			return -EINVAL;
		off += f[i].total_len;
	}
	if (off != n)
		return -EINVAL;
	memcpy(out->rpid, rpid, 16);                    /* of the second, CONNECT_RUNSPACEPOOL */
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
	struct bytes_writer w = bytes_writer(h, sizeof h);

	bytes_put_u64be(&w, object_id);
	bytes_put_u64be(&w, 0);                         /* fragment id */
	bytes_put_u8(&w, 3);                            /* start and end */
	bytes_put_u32be(&w, (uint32_t)len);
	buf_append(out, h, sizeof h);
	buf_append(out, msg, len);
}

void psrp_put_message(struct buf *out, uint64_t object_id, uint32_t type,
    const unsigned char rpid[16], const char *xml)
{
	size_t xl = strlen(xml);
	unsigned char *m = xmalloc(PSRP_MESSAGE_HEADER + 3 + xl);
	struct bytes_writer w = bytes_writer(m, PSRP_MESSAGE_HEADER + 3 + xl);

	bytes_put_u32le(&w, PSRP_DEST_CLIENT);
	bytes_put_u32le(&w, type);
	bytes_put(&w, rpid, 16);
	bytes_zero(&w, 16);                             /* no pipeline */
	bytes_put(&w, "\xef\xbb\xbf", 3);               /* UTF-8 BOM, as PowerShell writes */
	bytes_put(&w, xml, xl);
	psrp_put_fragment(out, object_id, m, w.off);
	free(m);
}

static const struct { const char *name; int kind; } oop_names[] = {
	{ "Data", OOP_DATA }, { "DataAck", OOP_DATA_ACK }, { "Command", OOP_COMMAND },
	{ "CommandAck", OOP_COMMAND_ACK }, { "Signal", OOP_SIGNAL }, { "SignalAck", OOP_SIGNAL_ACK },
	{ "Close", OOP_CLOSE }, { "CloseAck", OOP_CLOSE_ACK },
};

/* Expect `s` next and move past it.  A mismatch fails the whole packet,
 * so where r is left then does not matter. */
static bool lit(struct bytes_reader *r, const char *s)
{
	size_t n = strlen(s);
	const unsigned char *q = bytes_take(r, n);

	return q && memcmp(q, s, n) == 0;
}

static void skip_spaces(struct bytes_reader *r)
{
	while (bytes_peek(r) == ' ')
		bytes_skip(r, 1);
}

/* name='value' into out, NUL-terminated; false if it does not fit. */
static bool attr(struct bytes_reader *r, const char *name, char *out, size_t outlen)
{
	size_t n = 0;
	int c;

	skip_spaces(r);
	if (!lit(r, name) || !lit(r, "='"))
		return false;
	for (; (c = bytes_peek(r)) != '\''; n++) {
		if (c < 0 || n + 1 >= outlen)
			return false;
		out[n] = (char)c;
		bytes_skip(r, 1);
	}
	out[n] = '\0';
	bytes_skip(r, 1);
	return true;
}

int oop_parse(const char *line, size_t len, struct oop_packet *out)
{
	struct bytes_reader r = bytes_reader(line, len);
	const char *name;
	char stream[32];
	size_t nl;
	int c;

	memset(out, 0, sizeof *out);
	if (!lit(&r, "<"))
		return -EINVAL;
	name = line + r.off;
	while ((c = bytes_peek(&r)) >= 0 && c != ' ' && c != '>' && c != '/')
		bytes_skip(&r, 1);
	nl = (size_t)(line + r.off - name);
	out->kind = -1;
	for (size_t i = 0; i < ARRAY_SIZE(oop_names); i++)
		if (strlen(oop_names[i].name) == nl && !memcmp(name, oop_names[i].name, nl))
			out->kind = oop_names[i].kind;
	if (out->kind < 0)
		return -EINVAL;
	if (out->kind == OOP_DATA) {
		if (!attr(&r, "Stream", stream, sizeof stream))
			return -EINVAL;
		out->prompt_response = str_ieq(stream, "PromptResponse");
		if (!out->prompt_response && !str_ieq(stream, "Default"))
			return -EINVAL;
	}
	if (!attr(&r, "PSGuid", out->guid, sizeof out->guid) || !uuid_valid(out->guid))
		return -EINVAL;
	if (out->kind == OOP_DATA) {
		static const char close[] = "</Data>";
		const unsigned char *data;
		size_t dl;

		if (!lit(&r, ">") || bytes_left(&r) < sizeof close - 1)
			return -EINVAL;
		dl = bytes_left(&r) - (sizeof close - 1);
		data = bytes_take(&r, dl);
		if (!lit(&r, close))
			return -EINVAL;
		out->data = (const char *)data;
		out->data_len = dl;
		return 0;
	}
	skip_spaces(&r);
	if (!lit(&r, "/>") || bytes_left(&r))
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
