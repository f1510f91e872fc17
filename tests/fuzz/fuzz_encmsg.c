/*
 * fuzz_encmsg.c - libFuzzer harness for enc_parse, the multipart/encrypted
 * framing parser that reads sealed WinRM bodies (worker; the body comes from
 * a client that has logged in, but its framing is parsed before any
 * signature is checked).
 *
 * Input: byte 0 picks the Content-Type (a few fixed ones as real clients
 * send them, or one taken from the input up to the first '\n'); the rest is
 * the body, copied into a buffer of exactly its size so ASan sees any read
 * past it.  Whatever enc_parse accepts must point inside the body, in order
 * (header, then data, then the closing delimiter), with the limits
 * auth_unseal_request relies on; framed again with enc_build it must parse
 * back to the same header, data and Length.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "encmsg.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CT 512

static const char *const fixed_ct[] = {
	/* pywinrm, pypsrp, Go, Windows */
	"multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";"
	    "boundary=\"Encrypted Boundary\"",
	/* bare parameters, spaces after ';' */
	"multipart/encrypted; protocol=application/HTTP-SPNEGO-session-encrypted; "
	    "boundary=Encrypted Boundary",
	/* Ruby / OMI Kerberos */
	"multipart/encrypted;protocol=\"application/HTTP-Kerberos-session-encrypted\";"
	    "boundary=\"Encrypted Boundary\"",
	/* CredSSP chunking: never offered, must be refused */
	"multipart/x-multi-encrypted;protocol=\"application/HTTP-CredSSP-session-encrypted\";"
	    "boundary=\"Encrypted Boundary\"",
	/* a short boundary */
	"multipart/encrypted;boundary=\"b\";protocol=\"application/HTTP-SPNEGO-session-encrypted\"",
	/* not encrypted at all */
	"application/soap+xml;charset=UTF-8",
};
#define N_FIXED (sizeof fixed_ct / sizeof fixed_ct[0])

static int inside(const unsigned char *p, size_t n, const unsigned char *b, size_t len)
{
	return p && p >= b && n <= len && (size_t)(p - b) <= len - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char ct[MAX_CT + 1], ctype[160];
	const char *ctp;
	unsigned char *body;
	size_t len, sel;
	struct enc_body eb, back;
	struct buf out;
	int r;

	if (size < 1)
		return 0;
	sel = data[0] % (N_FIXED + 1);
	data++;
	size--;
	if (sel < N_FIXED) {
		ctp = fixed_ct[sel];
	} else {
		/* libmicrohttpd gives us a NUL-terminated header value. */
		const uint8_t *nl = memchr(data, '\n', size);
		size_t cl = nl ? (size_t)(nl - data) : size;

		if (cl > MAX_CT)
			return 0;
		memcpy(ct, data, cl);
		ct[cl] = '\0';
		if (strlen(ct) != cl)
			return 0;
		ctp = ct;
		data += nl ? cl + 1 : cl;
		size -= nl ? cl + 1 : cl;
	}
	len = size;
	body = malloc(len ? len : 1);
	if (!body)
		return 0;
	memcpy(body, data, len);

	(void)enc_is_encrypted(ctp);
	r = enc_parse(ctp, body, len, &eb);
	if (r != 0 && r != -EINVAL && r != -EBADMSG)
		abort();
	if (r != 0)
		goto done;

	/* What it accepted lies inside the body, header then data. */
	if (!enc_is_encrypted(ctp) || str_iprefix(ctp, "multipart/x-multi-encrypted"))
		abort();
	if (memchr(eb.protocol, '\0', sizeof eb.protocol) == NULL ||
	    (strcasecmp(eb.protocol, ENC_PROTO_SPNEGO) && strcasecmp(eb.protocol, ENC_PROTO_KERBEROS)))
		abort();
	if (eb.header_len == 0 || eb.header_len > 1024 ||
	    !inside(eb.header, eb.header_len, body, len) ||
	    !inside(eb.data, eb.data_len, body, len) ||
	    eb.data != eb.header + eb.header_len ||
	    eb.header < body + 4 ||
	    eb.orig_len > 64ULL * 1024 * 1024)
		abort();
	/* The 4-byte little-endian header length sits just before the header. */
	{
		const unsigned char *hp = eb.header - 4;
		uint32_t hl = (uint32_t)hp[0] | (uint32_t)hp[1] << 8 | (uint32_t)hp[2] << 16 |
		    (uint32_t)hp[3] << 24;
		if (hl != eb.header_len)
			abort();
	}
	/* Something (the closing delimiter) follows the data inside the body. */
	if ((size_t)(eb.data + eb.data_len - body) >= len)
		abort();

	/* Framed again as we answer, it parses back to the same pieces. */
	buf_init(&out, 0);
	if (enc_build(eb.protocol, eb.header, eb.header_len, eb.data, eb.data_len, eb.orig_len,
	    &out, ctype, sizeof ctype) != 0)
		abort();
	if (enc_parse(ctype, out.data, out.len, &back) != 0 ||
	    strcmp(back.protocol, eb.protocol) || back.orig_len != eb.orig_len ||
	    back.header_len != eb.header_len || memcmp(back.header, eb.header, eb.header_len) ||
	    back.data_len != eb.data_len || (eb.data_len && memcmp(back.data, eb.data, eb.data_len)))
		abort();
	buf_free(&out);
done:
	free(body);
	return 0;
}
