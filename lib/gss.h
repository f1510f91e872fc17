/*
 * gss.h - Kerberos through MIT GSSAPI: accepting in the monitor, message
 * protection in the worker.
 *
 * The monitor holds the keytab and runs gss_accept_sec_context; the
 * established context is exported (gss_export_sec_context) and imported by
 * the worker, which then only wraps and unwraps messages.  The worker never
 * sees the keytab.
 */
#ifndef WINRMD_GSS_H
#define WINRMD_GSS_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* True for a raw Kerberos GSS token ([APPLICATION 0] with the krb5 OID). */
bool gss_is_krb5_token(const unsigned char *t, size_t n);

/* monitor: accept one token.  0 on success with the local user, the reply
 * token and the exported context; -EACCES with a reason otherwise. */
int gss_accept(const char *keytab, const unsigned char *tok, size_t n,
    const unsigned char *cb, size_t cblen, bool require_cb, char **local_user,
    struct buf *out_token, struct buf *exported, char *why, size_t whylen);

/* worker: a context imported from the monitor */
struct gss_sec;
int gss_sec_import(const unsigned char *ctx, size_t n, struct gss_sec **out);
void gss_sec_free(struct gss_sec *s);
/* Unwrap header+data (data decrypted in place, *plain_len set); -EACCES on failure. */
int gss_sec_unwrap(struct gss_sec *s, const unsigned char *hdr, size_t hl,
    unsigned char *data, size_t dl, size_t *plain_len);
/* Wrap data: header and sealed data (+padding) appended to hdr / sealed. */
int gss_sec_wrap(struct gss_sec *s, const unsigned char *data, size_t dl, struct buf *hdr,
    struct buf *sealed);

#endif
