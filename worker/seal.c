/*
 * seal.c - WinRM message encryption over HTTP (worker, user winrmd).
 *
 * After a Negotiate login (NTLM, or Kerberos through SPNEGO) a client on
 * http:// seals each body as multipart/encrypted with the login's keys, and
 * the answer to a sealed request is sealed too, faults included.  The keys
 * belong to the connection's login (auth_neg.c); this file opens requests
 * before the envelope is read and seals answers as http.c sends them, in
 * answer order, since NTLM's sequence numbers count them.
 */
#include <errno.h>
#include <stdio.h>

#include <microhttpd.h>

#include "auth.h"
#include "encmsg.h"
#include "gss.h"
#include "http.h"
#include "log.h"
#include "net_state.h"
#include "ntlm.h"
#include "seal.h"
#include "util.h"

static void (*NEXT)(struct http_req *r);

void seal_set_next(void (*serve)(struct http_req *r))
{
	NEXT = serve;
}

/* Unseal a multipart/encrypted body in place; <0 when r was answered. */
static int unseal(struct http_req *r)
{
	const char *ct = http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
	struct gss_sec *gss = auth_conn_gss(r->conn);
	struct ntlm_sec *ntlm = auth_conn_ntlm(r->conn);
	struct enc_body eb;
	struct buf plain;

	if (!enc_is_encrypted(ct))
		return 0;
	if (gss && enc_parse(ct, r->body.data, r->body.len, &eb) == 0) {
		size_t plain_len = 0;
		buf_init(&plain, r->body.limit);
		buf_append(&plain, eb.data, eb.data_len);
		if (gss_sec_unwrap(gss, eb.header, eb.header_len, plain.data, plain.len, &plain_len) < 0) {
			buf_free_secret(&plain);
			log_notice("sealed message from %s failed its integrity check", r->conn->remote);
			auth_fail(r, "bad-signature");
			return -EACCES;
		}
		plain.len = MIN(plain_len, eb.orig_len ? eb.orig_len : plain_len);
		snprintf(r->enc_protocol, sizeof r->enc_protocol, "%s", eb.protocol);
		buf_free_secret(&r->body);
		r->body = plain;
		r->encrypted = true;
		return 0;
	}
	if (!ntlm || enc_parse(ct, r->body.data, r->body.len, &eb) < 0 ||
	    eb.header_len != 16 || eb.orig_len > eb.data_len) {
		snprintf(r->result, sizeof r->result, "bad-encryption");
		http_respond_empty(r, MHD_HTTP_BAD_REQUEST);
		return -EBADMSG;
	}
	buf_init(&plain, r->body.limit);
	buf_append(&plain, eb.data, eb.data_len);
	if (ntlm_unseal(ntlm, plain.data, plain.len, eb.header) < 0) {
		/* Tampered or replayed: the context is dead; the client must log in again. */
		buf_free_secret(&plain);
		log_notice("sealed message from %s failed its signature check", r->conn->remote);
		auth_fail(r, "bad-signature");
		return -EACCES;
	}
	plain.len = eb.orig_len;        /* OMI pads to 16 */
	snprintf(r->enc_protocol, sizeof r->enc_protocol, "%s", eb.protocol);
	buf_free_secret(&r->body);
	r->body = plain;
	r->encrypted = true;
	return 0;
}

void seal_serve(struct http_req *r)
{
	if (unseal(r) < 0)
		return;
	if (!r->encrypted && !http_is_https(r) && !NET.conf.service.allow_unencrypted &&
	    r->body.len) {
		/* As Windows: over HTTP only sealed SOAP, unless AllowUnencrypted. */
		auth_fail(r, "unencrypted-refused");
		return;
	}
	if (!r->body.len) {
		/* The empty POST clients use to finish the handshake before sealing. */
		http_respond_empty(r, MHD_HTTP_OK);
		return;
	}
	NEXT(r);
}

int seal_response(struct http_req *r, struct buf *out, char *ctype, size_t ctlen)
{
	struct gss_sec *gss = auth_conn_gss(r->conn);
	struct ntlm_sec *ntlm = auth_conn_ntlm(r->conn);
	unsigned char sig[16];
	struct buf sealed;
	int rc;

	if (!r->encrypted || !r->out.len)
		return 0;
	if (gss) {
		struct buf hdr, data;
		buf_init(&hdr, 0);
		buf_init(&data, 0);
		buf_init(&sealed, 0);
		rc = gss_sec_wrap(gss, r->out.data, r->out.len, &hdr, &data);
		if (rc == 0)
			rc = enc_build(r->enc_protocol, hdr.data, hdr.len, data.data, data.len, data.len,
			    &sealed, ctype, ctlen);
		buf_free(&hdr);
		buf_free(&data);
		if (rc < 0) {
			buf_free(&sealed);
			return rc;
		}
		buf_free(out);
		*out = sealed;
		return 1;
	}
	if (!ntlm)
		return 0;
	if (ntlm_seal(ntlm, r->out.data, r->out.len, sig) < 0)
		return -EIO;
	buf_init(&sealed, 0);
	rc = enc_build(r->enc_protocol, sig, sizeof sig, r->out.data, r->out.len, r->out.len,
	    &sealed, ctype, ctlen);
	if (rc < 0) {
		buf_free(&sealed);
		return rc;
	}
	buf_free(out);
	*out = sealed;
	return 1;
}
