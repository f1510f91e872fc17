/*
 * seal.h - WinRM message encryption over HTTP (worker).
 */
#ifndef WINRMD_SEAL_H
#define WINRMD_SEAL_H

#include <stddef.h>

struct buf;
struct http_req;

/* Where an opened request goes next (worker.c: the envelope). */
void seal_set_next(void (*serve)(struct http_req *r));
/*
 * A request of a Negotiate login: unseal it, refuse plain SOAP over HTTP
 * unless AllowUnencrypted, answer the handshake's empty POST, serve the rest.
 */
void seal_serve(struct http_req *r);
/* Seal r's answer if its request was sealed: 1 and a new body + ctype, 0 if not sealed. */
int seal_response(struct http_req *r, struct buf *out, char *ctype, size_t ctlen);

#endif
