/*
 * auth_neg.c - the Negotiate and NTLM schemes and WinRM message encryption
 * (worker, user winrmd).  Sealing itself is seal.c's; this file holds the keys.
 *
 * The login is bound to the TCP connection: the worker runs the NTLM
 * exchange (NEGOTIATE -> CHALLENGE -> AUTHENTICATE), raw or inside SPNEGO,
 * and hands the proof to the monitor, which alone holds the NT hashes and
 * answers with the session key.  From then on requests on the connection
 * carry no Authorization header, and over HTTP their bodies are sealed
 * (multipart/encrypted); answers to sealed requests are sealed too,
 * faults included.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "auth.h"
#include "gss.h"
#include "http.h"
#include "ipc.h"
#include "log.h"
#include "mm.h"
#include "net_state.h"
#include "ntlm.h"
#include "spnego.h"

enum neg_state { NEG_NONE, NEG_CHALLENGED, NEG_VERIFYING, NEG_DONE };

struct auth_neg {
	enum neg_state state;
	char scheme[16];                /* as the client wrote it: Negotiate or NTLM */
	bool spnego;                    /* the client wraps NTLM in SPNEGO */
	struct buf negotiate, challenge, mech_types;
	uint32_t challenge_flags;
	unsigned char server_challenge[8];
	struct ntlm_sec sec;
	bool sec_ready;
	struct gss_sec *gss;            /* Kerberos: the context the monitor exported */
};

static const struct auth_next *NEXT;

void auth_neg_set_next(const struct auth_next *next)
{
	NEXT = next;
}

static void neg_reset(struct auth_neg *n)
{
	buf_free(&n->negotiate);
	buf_free(&n->challenge);
	buf_free(&n->mech_types);
	if (n->sec_ready)
		ntlm_sec_free(&n->sec);
	n->sec_ready = false;
	gss_sec_free(n->gss);
	n->gss = NULL;
	wipe(n->server_challenge, sizeof n->server_challenge);
	n->state = NEG_NONE;
}

void auth_neg_free(struct auth_neg *n)
{
	if (!n)
		return;
	neg_reset(n);
	free(n);
}

bool auth_conn_negotiated(const struct http_conn *c)
{
	return c->neg && c->neg->state == NEG_DONE && c->login_id;
}

const char *auth_conn_scheme(const struct http_conn *c)
{
	static const char *const names[] = { "Negotiate", "NTLM", "Kerberos" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (c->neg && str_ieq(c->neg->scheme, names[i]))
			return names[i];
	return "Negotiate";
}

bool auth_kerberos_offered(void)
{
	/* The keytab is root's: the monitor tells whether it can read it. */
	return NET.conf.auth.kerberos && (NET.facts & IPC_FACT_KEYTAB);
}

static void set_www(struct http_req *r, const char *scheme, const unsigned char *tok, size_t n)
{
	char *b64 = b64_encode(tok, n);

	free(r->www_auth);
	r->www_auth = xasprintf("%s %s", scheme, b64);
	free(b64);
}

static void fail(struct http_req *r, const char *why)
{
	snprintf(r->result, sizeof r->result, "%s", why);
	if (r->conn->neg)
		neg_reset(r->conn->neg);
	http_respond_challenge(r);
}

/* Names for our CHALLENGE: a standalone Windows host uses its computer name as domain. */
static void netbios_name(char *out, size_t len)
{
	size_t n = strcspn(NET.hostname, ".");

	n = MIN(n, 15);
	for (size_t i = 0; i < n && i + 1 < len; i++)
		out[i] = (char)((NET.hostname[i] >= 'a' && NET.hostname[i] <= 'z') ?
		    NET.hostname[i] - 32 : NET.hostname[i]);
	out[MIN(n, len - 1)] = '\0';
}

static uint64_t filetime_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec + 11644473600ULL) * 10000000ULL + (uint64_t)ts.tv_nsec / 100;
}

/* ---- NEGOTIATE -> CHALLENGE ------------------------------------------ */

struct challenge_ctx {
	struct http_req *r;
	uint32_t flags;
};

static void on_challenge(void *data, struct ipc_msg *m);

/*
 * The server challenge comes from the monitor, which accepts each one in
 * exactly one IPC_NTLM_VERIFY: a worker cannot replay an AUTHENTICATE it
 * once saw, since its challenge is spent.
 */
static void on_negotiate(struct http_req *r, struct auth_neg *n, const unsigned char *msg,
    size_t len)
{
	struct challenge_ctx *cc;
	uint32_t flags;

	if (ntlm_parse_negotiate(msg, len, &flags) < 0) {
		fail(r, "ntlm-bad-negotiate");
		return;
	}
	buf_init(&n->negotiate, 0);
	buf_append(&n->negotiate, msg, len);
	cc = xcalloc(1, sizeof *cc);
	cc->r = r;
	cc->flags = flags;
	r->call = mm_ntlm_challenge(on_challenge, cc);
	if (!r->call) {
		free(cc);
		fail(r, "ntlm-no-challenge");
	}
}

static void on_challenge(void *data, struct ipc_msg *m)
{
	struct challenge_ctx *cc = data;
	struct http_req *r = cc->r;
	uint32_t flags = cc->flags;
	struct auth_neg *n;
	const unsigned char *ch;
	size_t chl;
	char nb[16];
	struct buf out;

	free(cc);
	if (!m)
		return;
	r->call = 0;
	if (!mm_read_challenge(m, &ch, &chl))
		return;
	n = r->conn->neg;
	if (!n || chl != sizeof n->server_challenge) {
		fail(r, "ntlm-no-challenge");
		return;
	}
	memcpy(n->server_challenge, ch, chl);
	netbios_name(nb, sizeof nb);
	buf_init(&n->challenge, 0);
	if (ntlm_build_challenge(flags, nb, nb, NET.hostname, NET.hostname, filetime_now(),
	    n->server_challenge, &n->challenge, &n->challenge_flags) < 0) {
		fail(r, "ntlm-refused-flags");  /* LM or NTLMv1 only */
		return;
	}
	if (n->spnego) {
		buf_init(&out, 0);
		spnego_build_resp(SPNEGO_ACCEPT_INCOMPLETE, true, n->challenge.data, n->challenge.len,
		    NULL, 0, &out);
		set_www(r, n->scheme, out.data, out.len);
		buf_free(&out);
	} else {
		set_www(r, n->scheme, n->challenge.data, n->challenge.len);
	}
	n->state = NEG_CHALLENGED;
	snprintf(r->result, sizeof r->result, "ntlm-challenge");
	/* A challenge is a 401 with exactly one WWW-Authenticate: our token. */
	http_respond_empty(r, MHD_HTTP_UNAUTHORIZED);
}

/* ---- AUTHENTICATE -> monitor ------------------------------------------ */

struct verify_ctx {
	struct http_req *r;
	struct buf auth_msg;
	size_t mic_offset;
	struct buf client_mic;          /* SPNEGO mechListMIC, may be empty */
	uint32_t flags;
	char user[NTLM_MAX_NAME + 1];
};

static bool cbt_ok(struct http_req *r, const struct ntlm_auth *a)
{
	static const unsigned char zero[16];
	const struct net_listener *l = r->conn->l;
	int level = NET.conf.auth.cbt_level;
	unsigned char expect[16], app[128];
	size_t n;
	bool present = a->av_has_cbt && memcmp(a->av_cbt, zero, 16);

	if (!http_is_https(r) || level == CONF_CBT_NONE)
		return true;
	if (!present)
		return level != CONF_CBT_STRICT;
	memcpy(app, "tls-server-end-point:", 21);
	n = 21;
	memcpy(app + n, l->cert_hash, l->cert_hash_len);
	n += l->cert_hash_len;
	ntlm_cbt_hash(app, n, expect);
	return ct_equal(expect, a->av_cbt, 16);
}

static void finish_login(struct http_req *r);

static void on_ntlm_result(void *data, struct ipc_msg *m)
{
	struct verify_ctx *vc = data;
	struct http_req *r = vc->r;
	struct auth_neg *n;
	struct mm_login v;
	const unsigned char *key;
	unsigned char sig[16];
	struct buf out;

	if (!m)
		goto out;
	r->call = 0;
	n = r->conn->neg;
	if (!mm_read_login(m, &v) || !n) {
		http_respond_empty(r, MHD_HTTP_INTERNAL_SERVER_ERROR);
		goto out;
	}
	key = v.key;
	if (v.result == IPC_AUTH_FORBIDDEN) {
		neg_reset(n);
		NEXT->forbidden(r);
		goto out;
	}
	if (v.result != IPC_AUTH_OK || v.key_len != 16) {
		fail(r, v.result == IPC_AUTH_ACCOUNT ? "account-refused" : "bad-credentials");
		goto out;
	}
	/* The MIC binds all three messages to the key only the real user can derive. */
	if (vc->mic_offset && ntlm_verify_mic(key, n->negotiate.data, n->negotiate.len,
	    n->challenge.data, n->challenge.len, vc->auth_msg.data, vc->auth_msg.len,
	    vc->mic_offset) < 0) {
		fail(r, "ntlm-bad-mic");
		goto out;
	}
	/* Without SIGN there is no sealing: such a client may only use HTTPS (or AllowUnencrypted). */
	if (vc->flags & NTLMSSP_NEGOTIATE_SIGN) {
		if (ntlm_sec_init(&n->sec, key, vc->flags) < 0) {
			fail(r, "ntlm-no-session-security");
			goto out;
		}
		n->sec_ready = true;
	}
	if (n->spnego) {
		unsigned char *mic = NULL;
		size_t ml = 0;
		if (vc->client_mic.len && n->sec_ready) {
			/* pyspnego/SSPI: MIC with seq 0, then both sides re-key RC4 but keep counting. */
			if (ntlm_verify_in(&n->sec, n->mech_types.data, n->mech_types.len,
			    vc->client_mic.data) < 0) {
				fail(r, "spnego-bad-mic");
				goto out;
			}
			ntlm_sec_reset_rc4(&n->sec, true);
			ntlm_sign_out(&n->sec, n->mech_types.data, n->mech_types.len, sig);
			ntlm_sec_reset_rc4(&n->sec, false);
			mic = sig;
			ml = sizeof sig;
		}
		buf_init(&out, 0);
		spnego_build_resp(SPNEGO_ACCEPT_COMPLETED, false, NULL, 0, mic, ml, &out);
		set_www(r, n->scheme, out.data, out.len);
		buf_free(&out);
	}
	buf_free(&n->negotiate);
	buf_free(&n->challenge);
	buf_free(&n->mech_types);
	n->state = NEG_DONE;
	http_conn_set_login(r->conn, &v);
	r->conn->have_basic = false;
	finish_login(r);
out:
	buf_free_secret(&vc->auth_msg);
	buf_free(&vc->client_mic);
	wipe(vc, sizeof *vc);
	free(vc);
}

static void on_authenticate(struct http_req *r, struct auth_neg *n, const unsigned char *msg,
    size_t len, const unsigned char *mic, size_t mic_len)
{
	struct ntlm_auth a;
	struct verify_ctx *vc;
	struct mm_ntlm_verify q;

	if (n->state != NEG_CHALLENGED) {
		fail(r, "ntlm-out-of-order");
		return;
	}
	/*
	 * A MIC is checked whenever the client's MsvAvFlags announce one.  That
	 * flag lives inside the NTLMv2 blob the proof covers, so it cannot be
	 * stripped; Go's go-ntlmssp sends neither flag nor MIC.
	 */
	if (ntlm_parse_authenticate(msg, len, &a) < 0 ||
	    ntlm_check_flags(n->challenge_flags, a.flags) < 0 ||
	    (a.av_mic_present && !a.mic_offset)) {
		fail(r, "ntlm-bad-authenticate");
		return;
	}
	log_sanitize(r->claimed_user, sizeof r->claimed_user, a.user);
	if (!cbt_ok(r, &a)) {
		fail(r, "cbt-mismatch");
		return;
	}
	if (mic && mic_len != 16) {
		fail(r, "spnego-bad-mic");
		return;
	}
	vc = xcalloc(1, sizeof *vc);
	vc->r = r;
	buf_init(&vc->auth_msg, 0);
	buf_append(&vc->auth_msg, msg, len);
	vc->mic_offset = a.av_mic_present ? a.mic_offset : 0;
	buf_init(&vc->client_mic, 0);
	if (mic)
		buf_append(&vc->client_mic, mic, mic_len);
	vc->flags = a.flags;
	n->state = NEG_VERIFYING;
	q = (struct mm_ntlm_verify){
		.user = a.user, .domain = a.domain, .challenge = n->server_challenge,
		.nt = a.nt, .nt_len = a.nt_len, .esk = a.esk, .esk_len = a.esk_len,
		.flags = a.flags, .remote = r->conn->remote,
	};
	r->call = mm_ntlm_verify(&q, on_ntlm_result, vc);
	if (!r->call) {
		buf_free_secret(&vc->auth_msg);
		buf_free(&vc->client_mic);
		free(vc);
		fail(r, "ntlm-bad-authenticate");
	}
}

/* ---- Kerberos (raw, or inside SPNEGO) -> monitor ---------------------- */

struct gss_ctx {
	struct http_req *r;
};

static void on_gss_result(void *data, struct ipc_msg *m)
{
	struct gss_ctx *gc = data;
	struct http_req *r = gc->r;
	struct auth_neg *n;
	struct mm_login v;

	free(gc);
	if (!m)
		return;
	r->call = 0;
	n = r->conn->neg;
	if (!mm_read_login(m, &v) || !n) {
		http_respond_empty(r, MHD_HTTP_INTERNAL_SERVER_ERROR);
		return;
	}
	if (v.result == IPC_AUTH_FORBIDDEN) {
		neg_reset(n);
		NEXT->forbidden(r);
		return;
	}
	if (v.result != IPC_AUTH_OK) {
		fail(r, v.result == IPC_AUTH_ACCOUNT ? "account-refused" : "kerberos-refused");
		return;
	}
	if (gss_sec_import(v.key, v.key_len, &n->gss) < 0) {
		/* Usually an unreadable krb5.conf: the worker runs as winrmd, not root. */
		log_err("cannot import the Kerberos context of %s; is krb5.conf readable by "
		    "the winrmd user?", v.user);
		mm_login_release(v.login);
		fail(r, "kerberos-import-failed");
		return;
	}
	/* The mutual-authentication token rides on the answer (pywinrm requires it). */
	if (v.token_len)
		set_www(r, n->scheme, v.token, v.token_len);
	n->state = NEG_DONE;
	http_conn_set_login(r->conn, &v);
	r->conn->have_basic = false;
	r->scheme = str_ieq(n->scheme, "Kerberos") ? "Kerberos" : "Negotiate";
	finish_login(r);
}

static void on_kerberos(struct http_req *r, struct auth_neg *n, const unsigned char *tok, size_t len)
{
	const struct net_listener *l = r->conn->l;
	unsigned char app[128];
	size_t al = 0;
	struct gss_ctx *gc;

	if (!NET.conf.auth.kerberos) {
		fail(r, "kerberos-disabled");
		return;
	}
	neg_reset(n);
	if (http_is_https(r) && NET.conf.auth.cbt_level != CONF_CBT_NONE && l->cert_hash_len) {
		memcpy(app, "tls-server-end-point:", 21);
		memcpy(app + 21, l->cert_hash, l->cert_hash_len);
		al = 21 + l->cert_hash_len;
	}
	gc = xcalloc(1, sizeof *gc);
	gc->r = r;
	n->state = NEG_VERIFYING;
	r->call = mm_gss_accept(tok, len, app, al, al && NET.conf.auth.cbt_level == CONF_CBT_STRICT,
	    r->conn->remote, on_gss_result, gc);
	if (!r->call) {
		free(gc);
		fail(r, "kerberos-token-too-large");
	}
}

/* ---- entry points ----------------------------------------------------- */

void auth_negotiate(struct http_req *r, const char *scheme, const char *b64)
{
	struct auth_neg *n = r->conn->neg;
	unsigned char *tok;
	long len;
	size_t bl = strlen(b64);

	r->scheme = str_ieq(scheme, "NTLM") ? "NTLM" : str_ieq(scheme, "Kerberos") ? "Kerberos" :
	    "Negotiate";
	if (!str_ieq(scheme, "Kerberos") && !NET.conf.auth.negotiate) {
		fail(r, "negotiate-disabled");
		return;
	}
	if (!bl || bl > AUTH_MAX_HEADER) {
		fail(r, "malformed-authorization");
		return;
	}
	tok = xmalloc(b64_decoded_max(bl));
	len = b64_decode(b64, bl, tok, b64_decoded_max(bl));
	if (len <= 0) {
		free(tok);
		fail(r, "malformed-authorization");
		return;
	}
	if (!n) {
		n = r->conn->neg = xcalloc(1, sizeof *n);
	} else if (n->state == NEG_DONE || n->state == NEG_VERIFYING) {
		/* A new handshake on an authenticated connection starts over. */
		neg_reset(n);
	}
	snprintf(n->scheme, sizeof n->scheme, "%s", r->scheme);

	if (gss_is_krb5_token(tok, (size_t)len)) {
		on_kerberos(r, n, tok, (size_t)len);
	} else if (str_ieq(scheme, "Kerberos")) {
		fail(r, "unsupported-token");   /* the Kerberos scheme carries only Kerberos */
	} else if (ntlm_looks_like(tok, (size_t)len)) {
		uint32_t type = (size_t)len >= 12 ? (uint32_t)tok[8] | (uint32_t)tok[9] << 8 : 0;
		if (n->state == NEG_NONE)
			n->spnego = false;
		if (type == 1 && n->state == NEG_NONE)
			on_negotiate(r, n, tok, (size_t)len);
		else if (type == 3 && !n->spnego)
			on_authenticate(r, n, tok, (size_t)len, NULL, 0);
		else
			fail(r, "ntlm-out-of-order");
	} else if (spnego_looks_like(tok, (size_t)len)) {
		struct spnego_tok st;
		if (spnego_parse(tok, (size_t)len, &st) < 0) {
			fail(r, "spnego-malformed");
		} else if (st.kind == SPNEGO_INIT && st.mech_krb5_first && st.mech_token) {
			/* MIT's SPNEGO mechanism takes the whole token and answers in kind. */
			on_kerberos(r, n, tok, (size_t)len);
		} else if (st.kind == SPNEGO_INIT) {
			if (!st.offers_ntlm || !st.mech_ntlm_first || !st.mech_token ||
			    !ntlm_looks_like(st.mech_token, st.mech_token_len)) {
				/* Kerberos inside SPNEGO needs a keytab; not configured here. */
				fail(r, "spnego-no-usable-mech");
			} else {
				neg_reset(n);
				n->spnego = true;
				buf_init(&n->mech_types, 0);
				buf_append(&n->mech_types, st.mech_types, st.mech_types_len);
				on_negotiate(r, n, st.mech_token, st.mech_token_len);
			}
		} else if (n->spnego && st.mech_token && ntlm_looks_like(st.mech_token, st.mech_token_len)) {
			on_authenticate(r, n, st.mech_token, st.mech_token_len, st.mic, st.mic_len);
		} else {
			fail(r, "spnego-out-of-order");
		}
	} else {
		fail(r, "unsupported-token");
	}
	wipe(tok, (size_t)len);
	free(tok);
}

/* Authenticated (now or before, on this connection): on to unsealing and the envelope. */
static void finish_login(struct http_req *r)
{
	r->user = r->conn->user;
	r->authenticated = true;
	NEXT->sealed(r);
}

void auth_connection_login(struct http_req *r)
{
	finish_login(r);
}

void auth_fail(struct http_req *r, const char *why)
{
	fail(r, why);
}

struct ntlm_sec *auth_conn_ntlm(const struct http_conn *c)
{
	return c->neg && c->neg->sec_ready ? &c->neg->sec : NULL;
}

struct gss_sec *auth_conn_gss(const struct http_conn *c)
{
	return c->neg ? c->neg->gss : NULL;
}
