/*
 * http.h - one HTTP request as the rest of the worker sees it (worker).
 *
 * A request is answered exactly once, with http_respond*.  The answer may
 * come later (a password check at the monitor, a Receive long-poll): the
 * connection is then suspended in libmicrohttpd and resumed by the answer.
 */
#ifndef WINRMD_HTTP_H
#define WINRMD_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

struct MHD_Connection;
struct net_listener;
struct auth_neg;

/* Per TCP connection: who authenticated on it. */
struct http_conn {
	struct net_listener *l;
	char remote[64];
	uint64_t login_id;              /* the monitor's id of the verified login, 0 = none */
	char *user;
	uid_t uid;
	unsigned char basic_hash[32];   /* SHA-256 of the Authorization header that verified */
	bool have_basic;
	bool cert_login;                /* logged in by its TLS client certificate */
	unsigned nreq;
	struct auth_neg *neg;           /* Negotiate/NTLM state bound to this connection */
	int fd;
	struct sd_event_source *login_deadline;
	bool in_work;                   /* a whole request is being answered (auth, queue, dispatch) */
};

struct http_req;
/* Called if the request is torn down before it was answered. */
typedef void (*http_cancel_fn)(struct http_req *r, void *data);

struct http_req {
	struct http_conn *conn;
	struct MHD_Connection *mc;
	struct buf body;
	bool too_large, started, suspended, answered;
	bool body_dropped;              /* an unauthenticated body past the cap, not kept */
	unsigned long long discarded;   /* bytes of an oversized body read and dropped */
	uint32_t call;                  /* pending monitor call, 0 = none */
	/* The answer, queued by the access handler. */
	int status;
	struct buf out;
	const char *content_type;
	bool challenge;                 /* 401 with WWW-Authenticate headers */
	/* Principal of this request once authenticated. */
	const char *user;
	const char *scheme;
	char claimed_user[64];          /* who a failed login said it was, for the log */
	bool authenticated;
	/* What to log. */
	char action[160], resource[160], result[64];
	/* Message encryption: the request came sealed, so the answer goes sealed. */
	bool encrypted;
	char enc_protocol[64];
	char *www_auth;                 /* a final WWW-Authenticate token for the answer */
	http_cancel_fn cancel;
	void *cancel_data;
	struct http_req *next_suspended, *prev_suspended;
};

/*
 * What the layers above HTTP do with it; worker.c sets this once, so that
 * http.c calls nothing above it.  request: a whole request has arrived
 * (authenticate it, then serve it); add_challenges: WWW-Authenticate headers
 * for a 401; seal: seal an answer whose request came sealed (1 and a new body
 * and Content-Type, 0 if not sealed, <0 on error); conn_closed: the
 * connection is gone.
 */
struct MHD_Response;
struct http_handler {
	void (*request)(struct http_req *r);
	void (*add_challenges)(struct http_req *r, struct MHD_Response *resp);
	int (*seal)(struct http_req *r, struct buf *out, char *ctype, size_t ctlen);
	void (*conn_closed)(struct http_conn *c);
};
void http_set_handler(const struct http_handler *h);

struct mm_login;
/* The connection now speaks for v's login (Negotiate/certificate logins are per connection). */
void http_conn_set_login(struct http_conn *c, const struct mm_login *v);

struct net_listener;
/* Serve a listener (net.c starts and stops them as configurations change). */
int http_listener_start(struct net_listener *l);
void http_listener_stop(struct net_listener *l);

void http_respond(struct http_req *r, int status, struct buf *body);   /* takes body */
void http_respond_empty(struct http_req *r, int status);
void http_respond_challenge(struct http_req *r);
const char *http_header(struct http_req *r, const char *name);
bool http_is_https(const struct http_req *r);
/*
 * For a suspended request: false if the client has closed the connection or
 * sent anything (no WinRM client pipelines, so data means it gave up).
 */
bool http_client_alive(struct http_req *r);
/* The TLS client certificate chain (DER, leaf first); 0 when none. */
int http_peer_certs(struct http_req *r, const unsigned char **der, size_t *len, size_t max);
/* The host name as the client addressed us (for f:WSManFault/@Machine). */
void http_machine(struct http_req *r, char *out, size_t len);
/* The URL the client addressed (scheme://Host/wsman?PSVersion=…), sanitised. */
void http_url(struct http_req *r, char *out, size_t len);

#endif
