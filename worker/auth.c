/*
 * auth.c - authentication of HTTP requests (worker, user winrmd).
 *
 * Fail closed: a request reaches wsman_handle only with a principal the
 * monitor verified, or as an Identify explicitly marked unauthenticated.
 * The worker never sees /etc/shadow; it forwards Basic credentials to the
 * monitor and remembers, per connection, a hash of the header that passed,
 * so clients that send Basic on every request cost one PAM round trip per
 * connection instead of one per request.
 *
 * At most HTTP_UNAUTH_PENDING_MAX password checks are at the monitor at
 * once; later ones wait here, in arrival order, with their connections
 * suspended (pywinrm and Ansible open a new connection, hence a new check,
 * for every shell). Only past HTTP_AUTH_QUEUE_MAX waiting is the answer 503.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>
#include <openssl/evp.h>

#include "auth.h"
#include "http.h"
#include "ipc.h"
#include "log.h"
#include "mm.h"
#include "net_state.h"
#include "soap.h"

static unsigned pending_auth;   /* IPC_AUTH_PASSWORD calls not yet answered */

/*
 * Each password check in flight, by client address.  One address may hold
 * HTTP_AUTH_PER_ADDR_MAX of the HTTP_UNAUTH_PENDING_MAX checks: a host that
 * sends wrong passwords (each held two seconds by the monitor's failure
 * delay) then waits behind itself, and another host's login goes first.
 */
static struct {
	uint32_t call;
	char addr[sizeof ((struct http_conn *)0)->remote];
} in_flight[HTTP_UNAUTH_PENDING_MAX];

static unsigned addr_in_flight(const char *addr)
{
	unsigned n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(in_flight); i++)
		if (in_flight[i].call && !strcmp(in_flight[i].addr, addr))
			n++;
	return n;
}

static void flight_add(uint32_t call, const char *addr)
{
	for (size_t i = 0; i < ARRAY_SIZE(in_flight); i++)
		if (!in_flight[i].call) {
			in_flight[i].call = call;
			snprintf(in_flight[i].addr, sizeof in_flight[i].addr, "%s", addr);
			return;
		}
}

static void flight_remove(uint32_t call)
{
	for (size_t i = 0; i < ARRAY_SIZE(in_flight); i++)
		if (in_flight[i].call == call)
			in_flight[i].call = 0;
}

bool auth_negotiate_available(void)
{
	return NET.conf.auth.negotiate;     /* NTLM, raw or in SPNEGO */
}

static bool basic_allowed(const struct http_req *r)
{
	return NET.conf.auth.basic && (http_is_https(r) || NET.conf.service.allow_unencrypted);
}

void auth_add_challenges(struct http_req *r, struct MHD_Response *resp)
{
	/* Offer only what this listener can complete; each scheme its own header. */
	if (auth_negotiate_available())
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Negotiate");
	if (auth_kerberos_offered())
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Kerberos");
	if (basic_allowed(r))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"WSMAN\"");
}

int auth_basic_parse(const char *hdr, char **user, char **pass)
{
	const char *p;
	unsigned char *dec;
	char *colon;
	long n;
	size_t len;

	*user = *pass = NULL;
	if (!str_iprefix(hdr, "Basic "))
		return -EINVAL;
	p = hdr + 6;
	while (*p == ' ')
		p++;
	len = strlen(p);
	if (len == 0 || len > AUTH_MAX_HEADER)
		return -EINVAL;
	dec = xmalloc(b64_decoded_max(len) + 1);
	n = b64_decode(p, len, dec, b64_decoded_max(len));
	if (n <= 0) {
		free(dec);
		return -EINVAL;
	}
	dec[n] = '\0';
	colon = memchr(dec, ':', (size_t)n);
	if (!colon || memchr(dec, '\0', (size_t)n) || colon == (char *)dec ||
	    (size_t)(colon - (char *)dec) > AUTH_MAX_USER ||
	    strlen(colon + 1) > AUTH_MAX_PASSWORD) {
		freezero(dec, (size_t)n + 1);
		return -EINVAL;
	}
	*colon = '\0';
	*user = xstrdup((char *)dec);
	*pass = xstrdup(colon + 1);
	freezero(dec, (size_t)n + 1);
	return 0;
}

static void hash_header(const char *hdr, unsigned char out[32])
{
	static EVP_MD *sha256;          /* fetched once: a fetch per request costs as much as the hash */
	unsigned int len = 32;

	if (!sha256 && !(sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)))
		fatal("OpenSSL has no SHA-256");
	EVP_Digest(hdr, strlen(hdr), out, &len, sha256, NULL);
}

static void reject(struct http_req *r, const char *why)
{
	snprintf(r->result, sizeof r->result, "%s", why);
	http_respond_challenge(r);
}

static void release_login(struct http_conn *c)
{
	if (!c->login_id)
		return;
	mm_login_release(c->login_id);
	c->login_id = 0;
	free(c->user);
	c->user = NULL;
	c->have_basic = false;
	/* Every way a connection can stay logged in goes with the login. */
	c->cert_login = false;
	auth_neg_free(c->neg);
	c->neg = NULL;
}

void auth_conn_closed(struct http_conn *c)
{
	release_login(c);
	auth_neg_free(c->neg);
	c->neg = NULL;
}

static const struct auth_next *NEXT;

void auth_set_next(const struct auth_next *next)
{
	NEXT = next;
	auth_neg_set_next(next);
}

struct basic_ctx {
	struct http_req *r;
	unsigned char hash[32];
	const char *hdr;                /* the request's own header, valid while r lives */
	struct basic_ctx *next;
};
static struct basic_ctx *waiting, **waiting_tail = &waiting;
static unsigned n_waiting;

static void on_auth_result(void *data, struct ipc_msg *m)
{
	struct basic_ctx *bc = data;
	struct http_req *r = bc->r;
	struct mm_login v;

	if (!m) {               /* the request went away first */
		free(bc);
		return;
	}
	r->call = 0;
	if (!mm_read_login(m, &v)) {
		free(bc);
		http_respond_empty(r, MHD_HTTP_INTERNAL_SERVER_ERROR);
		return;
	}
	switch (v.result) {
	case IPC_AUTH_OK:
		http_conn_set_login(r->conn, &v);
		memcpy(r->conn->basic_hash, bc->hash, sizeof bc->hash);
		r->conn->have_basic = true;
		r->user = r->conn->user;
		r->authenticated = true;
		NEXT->serve(r);
		break;
	case IPC_AUTH_FORBIDDEN:
		r->user = NULL;         /* the claimed name is logged */
		NEXT->forbidden(r);
		break;
	case IPC_AUTH_ACCOUNT:
		reject(r, "account-refused");
		break;
	case IPC_AUTH_ERROR:
		snprintf(r->result, sizeof r->result, "auth-error");
		http_respond_empty(r, MHD_HTTP_INTERNAL_SERVER_ERROR);
		break;
	default:
		reject(r, "bad-credentials");
		break;
	}
	wipe(bc, sizeof *bc);
	free(bc);
}

static void auth_password_settled(uint32_t call);

static void waiting_remove(struct basic_ctx *bc)
{
	for (struct basic_ctx **pp = &waiting; *pp; pp = &(*pp)->next)
		if (*pp == bc) {
			*pp = bc->next;
			if (!*pp)
				waiting_tail = pp;
			n_waiting--;
			return;
		}
}

static void basic_unqueue(struct http_req *r, void *data)
{
	(void)r;
	waiting_remove(data);
	free(data);
}

/* Sends bc's credentials to the monitor (or rejects a malformed header). */
static void basic_send(struct basic_ctx *bc)
{
	struct http_req *r = bc->r;
	char *user, *pass;

	if (auth_basic_parse(bc->hdr, &user, &pass) < 0) {
		free(bc);
		reject(r, "malformed-authorization");
		return;
	}
	log_sanitize(r->claimed_user, sizeof r->claimed_user, user);
	/* A different credential on this connection: forget the old login first. */
	release_login(r->conn);
	snprintf(r->action, sizeof r->action, "%s", "");
	r->user = NULL;
	r->call = mm_auth_password(user, pass, r->conn->remote, on_auth_result,
	    auth_password_settled, bc);
	free(user);
	free_secret_str(pass);
	if (!r->call) {
		free(bc);
		reject(r, "malformed-authorization");
		return;
	}
	flight_add(r->call, r->conn->remote);
	pending_auth++;
}

/* The first waiter, in arrival order, whose address is below its share. */
static struct basic_ctx *next_eligible(void)
{
	for (struct basic_ctx *bc = waiting; bc; bc = bc->next)
		if (addr_in_flight(bc->r->conn->remote) < HTTP_AUTH_PER_ADDR_MAX)
			return bc;
	return NULL;
}

static void dispatch_waiting(void)
{
	struct basic_ctx *bc;

	/* A loop: a waiter whose header turns out malformed is answered without a check. */
	while (pending_auth < HTTP_UNAUTH_PENDING_MAX && (bc = next_eligible())) {
		waiting_remove(bc);
		bc->r->cancel = NULL;
		bc->r->cancel_data = NULL;
		basic_send(bc);
	}
}

/* A password check came back, or its request went away and the answer was dropped. */
static void auth_password_settled(uint32_t call)
{
	flight_remove(call);
	pending_auth--;
	dispatch_waiting();
}

static void auth_basic(struct http_req *r, const char *hdr)
{
	struct basic_ctx *bc;

	r->scheme = "Basic";
	if (!basic_allowed(r)) {
		reject(r, NET.conf.auth.basic ? "basic-needs-https" : "basic-disabled");
		return;
	}
	bc = xcalloc(1, sizeof *bc);
	bc->r = r;
	bc->hdr = hdr;
	hash_header(hdr, bc->hash);
	if (r->conn->have_basic && ct_equal(bc->hash, r->conn->basic_hash, sizeof bc->hash)) {
		free(bc);
		r->user = r->conn->user;
		r->authenticated = true;
		NEXT->serve(r);
		return;
	}
	if (pending_auth < HTTP_UNAUTH_PENDING_MAX && !waiting &&
	    addr_in_flight(r->conn->remote) < HTTP_AUTH_PER_ADDR_MAX) {
		basic_send(bc);
		return;
	}
	if (n_waiting >= HTTP_AUTH_QUEUE_MAX) {
		free(bc);
		snprintf(r->result, sizeof r->result, "auth-busy");
		http_respond_empty(r, MHD_HTTP_SERVICE_UNAVAILABLE);
		return;
	}
	*waiting_tail = bc;
	waiting_tail = &bc->next;
	n_waiting++;
	r->cancel = basic_unqueue;
	r->cancel_data = bc;
	/* It may be eligible now, ahead of waiters from a busier address. */
	dispatch_waiting();
}

#define CERT_AUTH "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"

struct cert_ctx {
	struct http_req *r;
};

static void on_cert_result(void *data, struct ipc_msg *m)
{
	struct cert_ctx *cc = data;
	struct http_req *r = cc->r;
	struct mm_login v;

	free(cc);
	if (!m)
		return;
	r->call = 0;
	if (!mm_read_login(m, &v)) {
		http_respond_empty(r, MHD_HTTP_INTERNAL_SERVER_ERROR);
		return;
	}
	if (v.result == IPC_AUTH_FORBIDDEN) {
		NEXT->forbidden(r);
		return;
	}
	if (v.result != IPC_AUTH_OK) {
		reject(r, "certificate-refused");
		return;
	}
	/* The certificate belongs to the TLS connection: so does the login. */
	http_conn_set_login(r->conn, &v);
	r->conn->cert_login = true;
	r->user = r->conn->user;
	r->authenticated = true;
	NEXT->serve(r);
}

static void auth_cert(struct http_req *r)
{
	const unsigned char *der[AUTH_MAX_CERT_CHAIN];
	size_t len[AUTH_MAX_CERT_CHAIN];
	struct cert_ctx *cc;
	int n;

	r->scheme = "Certificate";
	if (!http_is_https(r) || !NET.conf.auth.certificate) {
		reject(r, "certificate-disabled");
		return;
	}
	if (r->conn->cert_login) {
		r->user = r->conn->user;
		r->authenticated = true;
		NEXT->serve(r);
		return;
	}
	n = http_peer_certs(r, der, len, AUTH_MAX_CERT_CHAIN);
	if (n <= 0) {
		reject(r, "no-client-certificate");
		return;
	}
	cc = xcalloc(1, sizeof *cc);
	cc->r = r;
	r->call = mm_cert_login(der, len, (size_t)n, r->conn->remote, on_cert_result, cc);
	if (!r->call) {
		free(cc);
		reject(r, "certificate-chain-too-large");
	}
}

void auth_request(struct http_req *r)
{
	const char *hdr = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
	const char *ident = http_header(r, "WSMANIDENTIFY");

	if (hdr && strlen(hdr) > AUTH_MAX_HEADER) {
		reject(r, "authorization-too-long");
		return;
	}
	if (hdr && str_iprefix(hdr, "Basic ")) {
		auth_basic(r, hdr);
		return;
	}
	if (hdr && str_ieq(hdr, CERT_AUTH)) {
		auth_cert(r);
		return;
	}
	if (hdr && (str_iprefix(hdr, "Negotiate ") || str_iprefix(hdr, "NTLM ") ||
	    str_iprefix(hdr, "Kerberos "))) {
		const char *sp = strchr(hdr, ' ');
		char scheme[16];
		snprintf(scheme, sizeof scheme, "%.*s", (int)(sp - hdr), hdr);
		while (*sp == ' ')
			sp++;
		auth_negotiate(r, scheme, sp);
		return;
	}
	if (!hdr && auth_conn_negotiated(r->conn)) {
		r->scheme = auth_conn_scheme(r->conn);
		auth_connection_login(r);
		return;
	}
	if (!hdr && ident && str_ieq(ident, "unauthenticated") && NET.conf.service.unauth_identify) {
		/* Anyone can send this: keep what they can make the parser chew small. */
		if (r->body.len > HTTP_ANON_BODY_MAX) {
			snprintf(r->result, sizeof r->result, "too-large");
			http_respond_empty(r, MHD_HTTP_CONTENT_TOO_LARGE);
			return;
		}
		/* wsman_handle serves Identify, and only Identify, without a principal. */
		r->authenticated = false;
		r->scheme = "none";
		NEXT->serve(r);
		return;
	}
	reject(r, hdr ? "unsupported-scheme" : "no-authorization");
}
