/*
 * encmsg.h - WinRM message encryption framing: multipart/encrypted bodies
 * (worker).
 *
 * This module only frames; the cryptography is the session's (NTLM or GSS).
 * Input is parsed tolerantly (with or without the TAB before part headers,
 * quoted or bare boundary, padded Length) because clients differ; output is
 * exactly what Windows sends, because pywinrm, pypsrp and Go strip the
 * TAB-prefixed header literally.
 */
#ifndef WINRMD_ENCMSG_H
#define WINRMD_ENCMSG_H

#include <stddef.h>

#include "util.h"

#define ENC_PROTO_SPNEGO   "application/HTTP-SPNEGO-session-encrypted"
#define ENC_PROTO_KERBEROS "application/HTTP-Kerberos-session-encrypted"

struct enc_body {
	char protocol[64];              /* from the request's Content-Type */
	size_t orig_len;                /* OriginalContent Length= */
	const unsigned char *header;    /* the signature / GSS wrap header */
	size_t header_len;
	const unsigned char *data;      /* the sealed SOAP message */
	size_t data_len;
};

/* true if content_type announces an encrypted body. */
int enc_is_encrypted(const char *content_type);
/* Parse body (pointers into it); -EINVAL / -EBADMSG on malformed framing. */
int enc_parse(const char *content_type, const unsigned char *body, size_t len, struct enc_body *out);
/* Frame a sealed message; writes the Content-Type to use into ctype. */
int enc_build(const char *protocol, const unsigned char *header, size_t header_len,
    const unsigned char *data, size_t data_len, size_t orig_len, struct buf *out,
    char *ctype, size_t ctype_len);

#endif
