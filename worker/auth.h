/*
 * auth.h - HTTP authentication in the worker: which schemes a listener
 * offers, and Basic credentials handed to the monitor (worker).
 */
#ifndef WINRMD_AUTH_H
#define WINRMD_AUTH_H

#include "http.h"

/*
 * Where a request goes once authentication has its verdict; worker.c sets
 * it, so that nothing here calls up the request path.  serve: a principal is
 * known (or it is an anonymous Identify, which alone goes on without one);
 * sealed: the same for a Negotiate login, whose body may be sealed;
 * forbidden: the right password of an account that may not log in.
 */
struct auth_next {
	void (*serve)(struct http_req *r);
	void (*sealed)(struct http_req *r);
	void (*forbidden)(struct http_req *r);
};
void auth_set_next(const struct auth_next *next);

/* Authenticate r (may suspend), then on to auth_next. */
void auth_request(struct http_req *r);
/* The connection went away: release its login at the monitor. */
void auth_conn_closed(struct http_conn *c);
/* Add WWW-Authenticate headers for every scheme the listener can accept. */
struct MHD_Response;
void auth_add_challenges(struct http_req *r, struct MHD_Response *resp);
/* Whether a scheme the configuration enables is also built into this daemon. */
bool auth_negotiate_available(void);

/* auth_neg.c: Negotiate/NTLM/Kerberos logins bound to the connection. */
void auth_neg_set_next(const struct auth_next *next);
void auth_negotiate(struct http_req *r, const char *scheme, const char *b64);
bool auth_conn_negotiated(const struct http_conn *c);
bool auth_kerberos_offered(void);
const char *auth_conn_scheme(const struct http_conn *c);
void auth_connection_login(struct http_req *r);
void auth_neg_free(struct auth_neg *n);
/* The login's keys for message sealing, NULL when it has none of that kind. */
struct ntlm_sec *auth_conn_ntlm(const struct http_conn *c);
struct gss_sec *auth_conn_gss(const struct http_conn *c);
/* A sealed message failed its check: the login is void; answers r with a challenge. */
void auth_fail(struct http_req *r, const char *why);

/* Parse "Basic b64(user:pass)"; returns 0 and malloc'ed user/pass. */
int auth_basic_parse(const char *hdr, char **user, char **pass);

#endif
