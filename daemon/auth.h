/*
 * auth.h - HTTP authentication in the worker: which schemes a listener
 * offers, and Basic credentials handed to the monitor (worker).
 */
#ifndef WINRMD_AUTH_H
#define WINRMD_AUTH_H

#include "http.h"

/* Authenticate r (may suspend); calls wsman_handle(r) once a principal is known. */
void auth_request(struct http_req *r);
/* The connection went away: release its login at the monitor. */
void auth_conn_closed(struct http_conn *c);
/* Add WWW-Authenticate headers for every scheme the listener can accept. */
struct MHD_Response;
void auth_add_challenges(struct http_req *r, struct MHD_Response *resp);
/* Whether a scheme the configuration enables is also built into this daemon. */
bool auth_negotiate_available(void);

/* auth_neg.c: Negotiate/NTLM and message encryption. */
void auth_negotiate(struct http_req *r, const char *scheme, const char *b64);
bool auth_conn_negotiated(const struct http_conn *c);
bool auth_kerberos_offered(void);
const char *auth_conn_scheme(const struct http_conn *c);
void auth_connection_login(struct http_req *r);
void auth_neg_free(struct auth_neg *n);
/* Unseal a multipart/encrypted body in place; <0 when r was answered. */
int auth_unseal_request(struct http_req *r);
/* Seal r's answer if its request was sealed: 1 and a new body + ctype, 0 if not sealed. */
struct buf;
int auth_seal_response(struct http_req *r, struct buf *out, char *ctype, size_t ctlen);

struct mm_login;
/* The connection now speaks for v's login (Negotiate/certificate logins are per connection). */
void auth_conn_set_login(struct http_conn *c, const struct mm_login *v);

/* Parse "Basic b64(user:pass)"; returns 0 and malloc'ed user/pass. */
int auth_basic_parse(const char *hdr, char **user, char **pass);

#endif
