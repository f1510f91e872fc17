/*
 * encmsg.c - parse and build multipart/encrypted WinRM bodies (worker).
 *
 * Layout (MS-WSMV 2.2.9.1):
 *   --Encrypted Boundary\r\n
 *   \tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n
 *   \tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=N\r\n
 *   --Encrypted Boundary\r\n
 *   \tContent-Type: application/octet-stream\r\n
 *   <u32le header length><header><sealed data>--Encrypted Boundary--\r\n
 * Every length read here is checked against the buffer before use.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "encmsg.h"

#define OCTET_HDR "Content-Type: application/octet-stream"

int enc_is_encrypted(const char *ct)
{
	return ct && (str_iprefix(ct, "multipart/encrypted") ||
	    str_iprefix(ct, "multipart/x-multi-encrypted"));
}

/* Value of parameter `name` in a Content-Type (quoted or bare), into out. */
static int ct_param(const char *ct, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	for (const char *p = strchr(ct, ';'); p; p = strchr(p + 1, ';')) {
		const char *q = p + 1, *e;
		size_t n;

		while (*q == ' ' || *q == '\t')
			q++;
		if (strncasecmp(q, name, nl) || q[nl] != '=')
			continue;
		q += nl + 1;
		if (*q == '"') {
			e = strchr(++q, '"');
			if (!e)
				return -EINVAL;
		} else {
			e = q + strcspn(q, ";");
		}
		n = (size_t)(e - q);
		if (n == 0 || n >= outlen)
			return -EINVAL;
		memcpy(out, q, n);
		out[n] = '\0';
		return 0;
	}
	return -ENOENT;
}

static const unsigned char *memmem_c(const unsigned char *h, size_t hl, const char *n)
{
	return memmem(h, hl, n, strlen(n));
}

int enc_parse(const char *ct, const unsigned char *body, size_t len, struct enc_body *out)
{
	char boundary[128], delim[140], close_delim[144], proto[64];
	const unsigned char *p, *end = body + len, *hdr_end, *octet, *closing, *lenp;
	unsigned long long orig;
	uint32_t hl;
	char lenbuf[24];
	size_t i;

	memset(out, 0, sizeof *out);
	if (!enc_is_encrypted(ct) || str_iprefix(ct, "multipart/x-multi-encrypted"))
		return -EINVAL;         /* CredSSP chunking is not offered */
	if (ct_param(ct, "boundary", boundary, sizeof boundary) < 0 ||
	    ct_param(ct, "protocol", proto, sizeof proto) < 0)
		return -EINVAL;
	if (strcasecmp(proto, ENC_PROTO_SPNEGO) && strcasecmp(proto, ENC_PROTO_KERBEROS))
		return -EINVAL;
	snprintf(out->protocol, sizeof out->protocol, "%s", proto);
	snprintf(delim, sizeof delim, "--%s", boundary);
	snprintf(close_delim, sizeof close_delim, "--%s--", boundary);

	/* First part: the headers up to the second delimiter. */
	p = memmem_c(body, len, delim);
	if (!p)
		return -EBADMSG;
	p += strlen(delim);
	hdr_end = memmem_c(p, (size_t)(end - p), delim);
	if (!hdr_end)
		return -EBADMSG;
	lenp = memmem_c(p, (size_t)(hdr_end - p), "Length=");
	if (!lenp)
		return -EBADMSG;
	lenp += 7;
	for (i = 0; i + 1 < sizeof lenbuf && lenp + i < hdr_end && lenp[i] >= '0' && lenp[i] <= '9'; i++)
		lenbuf[i] = (char)lenp[i];
	lenbuf[i] = '\0';
	if (parse_uint(lenbuf, 0, 64ULL * 1024 * 1024, &orig) < 0)
		return -EBADMSG;
	out->orig_len = (size_t)orig;

	/* Second part: after its Content-Type line comes the binary payload. */
	p = hdr_end + strlen(delim);
	octet = memmem_c(p, (size_t)(end - p), OCTET_HDR);
	if (!octet)
		return -EBADMSG;
	p = octet + strlen(OCTET_HDR);
	if (p < end && *p == '\r')
		p++;
	if (p < end && *p == '\n')
		p++;
	/* The payload ends at the last closing delimiter; tolerate what follows it. */
	closing = NULL;
	for (const unsigned char *s = p; (s = memmem_c(s, (size_t)(end - s), close_delim)); s++)
		closing = s;
	if (!closing)
		return -EBADMSG;
	if (closing - p < 4)
		return -EBADMSG;
	memcpy(&hl, p, 4);              /* little-endian on every host we build for */
	hl = le32toh(hl);
	if (hl == 0 || hl > (size_t)(closing - p) - 4 || hl > 1024)
		return -EBADMSG;
	out->header = p + 4;
	out->header_len = hl;
	out->data = p + 4 + hl;
	out->data_len = (size_t)(closing - out->data);
	return 0;
}

int enc_build(const char *protocol, const unsigned char *header, size_t header_len,
    const unsigned char *data, size_t data_len, size_t orig_len, struct buf *out,
    char *ctype, size_t ctype_len)
{
	uint32_t hl = htole32((uint32_t)header_len);
	int r = 0;

	snprintf(ctype, ctype_len,
	    "multipart/encrypted;protocol=\"%s\";boundary=\"Encrypted Boundary\"", protocol);
	r |= buf_appendf(out, "--Encrypted Boundary\r\n\tContent-Type: %s\r\n"
	    "\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=%zu\r\n"
	    "--Encrypted Boundary\r\n\t" OCTET_HDR "\r\n", protocol, orig_len);
	r |= buf_append(out, &hl, 4);
	r |= buf_append(out, header, header_len);
	r |= buf_append(out, data, data_len);
	r |= buf_appends(out, "--Encrypted Boundary--\r\n");
	return r ? -EMSGSIZE : 0;
}
