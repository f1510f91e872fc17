/*
 * http.c - libmicrohttpd in external-epoll mode inside the worker's sd-event
 * loop (worker, user winrmd).
 *
 * Only POST /wsman is served.  Bodies are collected up to the envelope
 * limit; anything larger gets 413 without being buffered.  Connections stay
 * open across 401s, because Negotiate and NTLM bind the login to the TCP
 * connection (openwsman's Connection: close broke exactly that).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <systemd/sd-event.h>

#include "http.h"
#include "log.h"
#include "mm.h"
#include "net_state.h"
#include "util.h"

#define SOAP_CTYPE "application/soap+xml;charset=UTF-8"

static struct http_req *suspended_head;
static sd_event_source *kick;

static void http_run_all(void);

static int on_kick(sd_event_source *s, void *userdata)
{
	(void)s; (void)userdata;
	http_run_all();
	return 0;
}

/*
 * In external-epoll mode libmicrohttpd does not wake its own epoll fd when a
 * connection is resumed, so the loop runs it once more on the next turn.
 */
static void kick_mhd(void)
{
	if (!kick) {
		if (sd_event_add_defer(NET.ev, &kick, on_kick, NULL) < 0)
			return;
		sd_event_source_set_description(kick, "mhd-kick");
	}
	sd_event_source_set_enabled(kick, SD_EVENT_ONESHOT);
}

static size_t body_limit(void)
{
	return (size_t)NET.conf.service.max_envelope_kb * 1024 + HTTP_BODY_OVERHEAD;
}

/*
 * The body the worker keeps of a request.  Before a connection has logged
 * in, a request that cannot authenticate itself (no Authorization header, or
 * an NTLM NEGOTIATE, which only asks for a challenge) is answered 401 whatever
 * its body says, so only HTTP_UNAUTH_BODY_MAX of it is kept: an anonymous
 * client cannot make the worker buffer whole envelopes.  Past that the body
 * is read and dropped, not refused: pywinrm and requests_ntlm send the real
 * message (a 250 KB Send when Ansible copies a file) on the first leg of
 * every new connection and expect the 401 that starts the login.  Only an
 * anonymous Identify is answered from its body; it gets 413 past the cap.
 * Basic, Kerberos and NTLM AUTHENTICATE carry a proof and keep the envelope.
 */
static size_t request_keep_limit(struct MHD_Connection *mc, const struct http_conn *conn,
    bool *identify)
{
	const char *hdr = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	bool unauth = !hdr;

	*identify = false;
	if (conn->login_id)
		return body_limit();
	if (hdr && (str_iprefix(hdr, "Negotiate ") || str_iprefix(hdr, "NTLM "))) {
		const char *tok = strchr(hdr, ' ');
		tok += strspn(tok, " ");
		unauth = !strncmp(tok, "TlRMTVNTUAAB", 12);    /* base64 of "NTLMSSP\0", type 1 */
	}
	*identify = !hdr && MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "WSMANIDENTIFY");
	return unauth ? MIN(body_limit(), (size_t)HTTP_UNAUTH_BODY_MAX) : body_limit();
}

bool http_is_https(const struct http_req *r)
{
	return r->conn->l->transport == CONF_HTTPS;
}

const char *http_header(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->mc, MHD_HEADER_KIND, name);
}

int http_peer_certs(struct http_req *r, const unsigned char **der, size_t *len, size_t max)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(r->mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	const gnutls_datum_t *certs;
	unsigned int n = 0;

	if (!ci || !ci->tls_session)
		return 0;
	certs = gnutls_certificate_get_peers((gnutls_session_t)ci->tls_session, &n);
	if (!certs)
		return 0;
	for (unsigned i = 0; i < n && i < max; i++) {
		der[i] = certs[i].data;
		len[i] = certs[i].size;
	}
	return (int)MIN((size_t)n, max);
}

bool http_client_alive(struct http_req *r)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(r->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	char c;
	ssize_t n;

	if (!ci)
		return false;
	n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void http_machine(struct http_req *r, char *out, size_t len)
{
	const char *host = http_header(r, "Host");
	size_t n;

	if (!host || !*host || strlen(host) >= len) {
		snprintf(out, len, "%s", NET.hostname);
		return;
	}
	if (host[0] == '[') {           /* [v6]:port */
		const char *e = strchr(host, ']');
		n = e ? (size_t)(e - host - 1) : strlen(host);
		snprintf(out, len, "%.*s", (int)n, host + 1);
		return;
	}
	n = strcspn(host, ":");
	snprintf(out, len, "%.*s", (int)n, host);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x21 || *p == '<' || *p == '&' || *p == '"')
			*p = '_';
}

static const struct http_handler *H;

void http_set_handler(const struct http_handler *h)
{
	H = h;
}

void http_conn_set_login(struct http_conn *c, const struct mm_login *v)
{
	/* A second handshake on the connection replaces the login: the monitor forgets the first. */
	if (c->login_id && c->login_id != v->login)
		mm_login_release(c->login_id);
	c->login_id = v->login;
	free(c->user);
	c->user = xstrdup(v->user);
	c->uid = v->uid;
}

/*
 * The URL the client addressed, as WinRM gives it to a plug-in (httpUrl,
 * which wsmprovhost puts in $PSSenderInfo.ConnectionString): scheme, Host
 * header, /wsman and PowerShell's ?PSVersion= query.  Text from the client,
 * so only printable ASCII passes; anything else falls back to our name.
 */
void http_url(struct http_req *r, char *out, size_t len)
{
	const char *host = http_header(r, "Host");
	const char *v = MHD_lookup_connection_value(r->mc, MHD_GET_ARGUMENT_KIND, "PSVersion");
	bool ok = host && *host && strlen(host) <= HTTP_HOST_MAX;

	for (const char *p = host; ok && *p; p++)
		ok = *p > 0x20 && *p < 0x7f && !strchr("<>&\"'/?#", *p);
	if (v && (!*v || strlen(v) > 32 || strspn(v, "0123456789.") != strlen(v)))
		v = NULL;
	snprintf(out, len, "%s://%s/wsman%s%s", http_is_https(r) ? "https" : "http",
	    ok ? host : NET.hostname, v ? "?PSVersion=" : "", v ? v : "");
}

static void suspend(struct http_req *r)
{
	if (r->suspended)
		return;
	MHD_suspend_connection(r->mc);
	r->suspended = true;
	r->next_suspended = suspended_head;
	r->prev_suspended = NULL;
	if (suspended_head)
		suspended_head->prev_suspended = r;
	suspended_head = r;
}

static void resume(struct http_req *r)
{
	if (!r->suspended)
		return;
	r->suspended = false;
	if (r->prev_suspended)
		r->prev_suspended->next_suspended = r->next_suspended;
	else
		suspended_head = r->next_suspended;
	if (r->next_suspended)
		r->next_suspended->prev_suspended = r->prev_suspended;
	MHD_resume_connection(r->mc);
	kick_mhd();
}

void http_respond(struct http_req *r, int status, struct buf *body)
{
	if (r->answered) {
		buf_free(body);
		return;
	}
	r->answered = true;
	r->status = status;
	r->out = *body;
	memset(body, 0, sizeof *body);
	if (!r->content_type)
		r->content_type = SOAP_CTYPE;
	r->cancel = NULL;
	resume(r);
}

void http_respond_empty(struct http_req *r, int status)
{
	struct buf b;

	buf_init(&b, 0);
	r->content_type = "";
	http_respond(r, status, &b);
}

void http_respond_challenge(struct http_req *r)
{
	r->challenge = true;
	http_respond_empty(r, MHD_HTTP_UNAUTHORIZED);
}

static void log_answer(struct http_req *r)
{
	struct log_rec rec = LOG_REC_INIT;

	/* Anonymous Identify probes are neither logins nor refusals; monitoring tools send many. */
	if (!r->authenticated && r->status == MHD_HTTP_OK)
		return;

	rec.remote = r->conn->remote;
	rec.user = r->user ? r->user : (r->claimed_user[0] ? r->claimed_user : NULL);
	rec.scheme = r->scheme;
	rec.action = r->action[0] ? r->action : NULL;
	rec.resource = r->resource[0] ? r->resource : NULL;
	rec.result = r->result[0] ? r->result : (r->status < 300 ? "ok" : NULL);
	rec.status = r->status;
	log_record(r->status >= 400 && r->status != 500 ? LOG_NOTICE : LOG_INFO, &rec,
	    "%s %s %d", rec.user ? rec.user : "-", r->action[0] ? r->action : "-", r->status);
}

static enum MHD_Result queue_answer(struct http_req *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char enc_ctype[160];

	/* Sealed here, in answer order, because NTLM sequence numbers count answers. */
	if (H->seal(r, &r->out, enc_ctype, sizeof enc_ctype) > 0)
		r->content_type = enc_ctype;
	resp = MHD_create_response_from_buffer(r->out.len, r->out.data, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (r->content_type && *r->content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
	if (r->www_auth)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->www_auth);
	if (r->challenge && !r->www_auth)
		H->add_challenges(r, resp);
	if (r->status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST");
	ret = MHD_queue_response(r->mc, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	log_answer(r);
	return ret;
}

/* A response for a request we refuse before reading its body. */
static enum MHD_Result refuse(struct MHD_Connection *mc, unsigned status, const char *why,
    struct http_conn *conn)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	struct log_rec rec = LOG_REC_INIT;
	enum MHD_Result ret;

	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST");
	ret = MHD_queue_response(mc, status, resp);
	MHD_destroy_response(resp);
	rec.remote = conn ? conn->remote : NULL;
	rec.result = why;
	rec.status = (int)status;
	log_record(LOG_NOTICE, &rec, "request refused: %s", why);
	return ret;
}

static enum MHD_Result count_content_length(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	unsigned *n = cls;
	(void)kind; (void)value;

	if (str_ieq(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
		(*n)++;
	return MHD_YES;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *mc, const char *url,
    const char *method, const char *version, const char *upload_data, size_t *upload_size,
    void **req_cls)
{
	struct net_listener *l = cls;
	struct http_req *r = *req_cls;
	(void)version;

	if (!r) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		struct http_conn *conn = ci ? ci->socket_context : NULL;
		const char *cl;
		size_t limit, keep;
		bool identify;

		if (!conn)
			return MHD_NO;
		if (strcmp(url, "/wsman") != 0)
			return refuse(mc, MHD_HTTP_NOT_FOUND, "not-found", conn);
		if (strcmp(method, "POST") != 0)
			return refuse(mc, MHD_HTTP_METHOD_NOT_ALLOWED, "method-not-allowed", conn);
		/* Two lengths are how requests get smuggled past a proxy in front of us. */
		unsigned ncl = 0;
		MHD_get_connection_values(mc, MHD_HEADER_KIND, count_content_length, &ncl);
		if (ncl > 1)
			return refuse(mc, MHD_HTTP_BAD_REQUEST, "duplicate-content-length", conn);
		cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		keep = request_keep_limit(mc, conn, &identify);
		limit = identify ? keep : body_limit();
		r = xcalloc(1, sizeof *r);
		if (cl) {
			unsigned long long n;
			/*
			 * Past the envelope limit the body is read and dropped before the
			 * 413, so the client reads our answer instead of a TCP reset; past
			 * HTTP_DISCARD_MAX that is not worth it and the connection goes.
			 */
			if (parse_uint(cl, 0, ~0ULL, &n) < 0 || n > HTTP_DISCARD_MAX) {
				free(r);
				return refuse(mc, MHD_HTTP_CONTENT_TOO_LARGE, "too-large", conn);
			}
			if (n > limit) {
				/* A client waiting for 100-continue has sent nothing yet: answer now. */
				const char *exp = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
				    MHD_HTTP_HEADER_EXPECT);
				if (exp && str_ieq(exp, "100-continue")) {
					free(r);
					return refuse(mc, MHD_HTTP_CONTENT_TOO_LARGE, "too-large", conn);
				}
				r->too_large = true;
			}
		}
		r->conn = conn;
		r->mc = mc;
		buf_init(&r->body, keep);
		conn->nreq++;
		(void)l;
		*req_cls = r;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->too_large && !r->body_dropped && buf_append(&r->body, upload_data, *upload_size) < 0) {
			/* Past what we keep: refused past the envelope, else dropped (above). */
			if (r->body.limit >= body_limit())
				r->too_large = true;
			else
				r->body_dropped = true;
			r->discarded = r->body.len + *upload_size;
			buf_free(&r->body);
			if (r->discarded > body_limit())
				r->too_large = true;
		} else if (r->too_large || r->body_dropped) {
			r->discarded += *upload_size;
			if (r->discarded > HTTP_DISCARD_MAX)
				return MHD_NO;          /* a chunked body without end */
			if (r->discarded > body_limit())
				r->too_large = true;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->answered)
		return queue_answer(r);
	if (!r->started) {
		r->started = true;
		r->conn->in_work = true;
		if (r->too_large) {
			snprintf(r->result, sizeof r->result, "too-large");
			http_respond_empty(r, MHD_HTTP_CONTENT_TOO_LARGE);
		} else {
			H->request(r);
		}
		if (r->answered)
			return queue_answer(r);
	}
	suspend(r);
	return MHD_YES;
}

/* Whoever waits on r (a monitor call, a long-poll, the login queue) lets go of it. */
static void detach_waiters(struct http_req *r)
{
	http_cancel_fn fn = r->cancel;

	if (r->call) {
		mm_cancel(r->call);
		r->call = 0;
	}
	r->cancel = NULL;
	if (fn)
		fn(r, r->cancel_data);
}

static void request_completed(void *cls, struct MHD_Connection *mc, void **req_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_req *r = *req_cls;
	(void)cls; (void)mc; (void)toe;

	if (!r)
		return;
	if (r->started)
		r->conn->in_work = false;
	if (!r->answered)
		detach_waiters(r);
	else if (r->call)
		mm_cancel(r->call);
	buf_free_secret(&r->body);
	buf_free(&r->out);
	free(r->www_auth);
	free(r);
	*req_cls = NULL;
}

/*
 * libmicrohttpd's timeout is for idleness: a client that trickles a header
 * byte now and then, or never finishes logging in, would keep its connection
 * for ever.  Before login a connection gets HTTP_LOGIN_DEADLINE_S in all;
 * shutting the socket down makes libmicrohttpd close it as on any read error.
 * The deadline is the client's: a request it has sent whole and that waits
 * on us (the login queue, the monitor) gets another period.
 */
static int on_login_deadline(sd_event_source *s, uint64_t usec, void *data)
{
	struct http_conn *c = data;
	(void)usec;

	if (!c->login_id && c->in_work) {
		sd_event_source_set_time_relative(s, HTTP_LOGIN_DEADLINE_S * 1000000ULL);
		sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
		return 0;
	}
	if (!c->login_id && c->fd >= 0) {
		log_info("connection from %s: no login within %d s, closed", c->remote,
		    HTTP_LOGIN_DEADLINE_S);
		shutdown(c->fd, SHUT_RDWR);
		kick_mhd();
	}
	sd_event_source_set_enabled(s, SD_EVENT_OFF);
	return 0;
}

static void connection_notify(void *cls, struct MHD_Connection *mc, void **socket_ctx,
    enum MHD_ConnectionNotificationCode code)
{
	struct http_conn *c = *socket_ctx;
	(void)cls;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		c = xcalloc(1, sizeof *c);
		c->l = cls;
		if (ci && ci->client_addr) {
			const struct sockaddr *sa = ci->client_addr;
			if (sa->sa_family == AF_INET)
				inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
				    c->remote, sizeof c->remote);
			else if (sa->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
				    c->remote, sizeof c->remote);
		}
		if (!c->remote[0])
			snprintf(c->remote, sizeof c->remote, "unknown");
		ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
		c->fd = ci ? ci->connect_fd : -1;
		if (sd_event_add_time_relative(NET.ev, &c->login_deadline, CLOCK_MONOTONIC,
		    HTTP_LOGIN_DEADLINE_S * 1000000ULL, 0, on_login_deadline, c) < 0)
			log_warn("connection from %s: no login deadline", c->remote);
		else
			sd_event_source_set_description(c->login_deadline, "login-deadline");
		*socket_ctx = c;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED && c) {
		/* A listener at MaxConnections resumes accepting only when libmicrohttpd runs again. */
		kick_mhd();
		c->login_deadline = sd_event_source_disable_unref(c->login_deadline);
		H->conn_closed(c);
		free(c->user);
		wipe(c->basic_hash, sizeof c->basic_hash);
		free(c);
		*socket_ctx = NULL;
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	(void)cls;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	vsnprintf(msg, sizeof msg, fmt, ap);
#pragma GCC diagnostic pop
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("libmicrohttpd: %s", msg);
}

static int on_mhd_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct net_listener *l = userdata;
	(void)s; (void)fd; (void)revents;

	MHD_run(l->d);
	return 0;
}

static int on_mhd_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s; (void)usec; (void)userdata;
	http_run_all();
	return 0;
}

/* Before each loop iteration: arm one timer for libmicrohttpd's earliest timeout. */
static int on_prepare(sd_event_source *s, void *userdata)
{
	MHD_UNSIGNED_LONG_LONG t, best = ~0ULL;
	uint64_t now;
	(void)s; (void)userdata;

	for (size_t i = 0; i < NET.n_ls; i++)
		if (NET.ls[i]->d && MHD_get_timeout(NET.ls[i]->d, &t) == MHD_YES && t < best)
			best = t;
	/* Accuracy 1 µs: the default 250 ms slack would delay every TLS record. */
	if (!NET.mhd_timer) {
		int r = sd_event_add_time(NET.ev, &NET.mhd_timer, CLOCK_MONOTONIC, ~0ULL, 1, on_mhd_timer, NULL);
		if (r < 0)
			return log_err_errno(r, "cannot arm libmicrohttpd's timer");
		sd_event_source_set_description(NET.mhd_timer, "mhd-timer");
	}
	if (best == ~0ULL) {
		sd_event_source_set_enabled(NET.mhd_timer, SD_EVENT_OFF);
		return 0;
	}
	sd_event_now(NET.ev, CLOCK_MONOTONIC, &now);
	sd_event_source_set_time(NET.mhd_timer, now + best * 1000);
	sd_event_source_set_enabled(NET.mhd_timer, SD_EVENT_ONESHOT);
	return 0;
}

static void http_run_all(void)
{
	for (size_t i = 0; i < NET.n_ls; i++)
		if (NET.ls[i]->d)
			MHD_run(NET.ls[i]->d);
}

int http_listener_start(struct net_listener *l)
{
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *di;
	struct MHD_OptionItem opts[16];
	size_t n = 0;
	int r;

#define OPT(o, v, p) opts[n++] = (struct MHD_OptionItem){ (o), (intptr_t)(v), (p) }
	OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL);    /* must come first */
	OPT(MHD_OPTION_LISTEN_SOCKET, l->fd, NULL);
	OPT(MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL);
	OPT(MHD_OPTION_NOTIFY_CONNECTION, connection_notify, l);
	OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONN_MEMORY_LIMIT, NULL);
	OPT(MHD_OPTION_CONNECTION_LIMIT, NET.conf.service.max_connections, NULL);
	OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, NET.conf.service.max_connections_per_ip, NULL);
	OPT(MHD_OPTION_CONNECTION_TIMEOUT, HTTP_CONN_TIMEOUT_S, NULL);
	if (l->transport == CONF_HTTPS) {
		flags |= MHD_USE_TLS;
		OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, l->cert_pem);
		OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, l->key_pem);
		OPT(MHD_OPTION_HTTPS_PRIORITIES, 0,
		    "NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:%SERVER_PRECEDENCE");
		if (l->trust_pem)       /* asks clients for a certificate (optional) */
			OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, l->trust_pem);
	}
	OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
	l->d = MHD_start_daemon(flags, 0, NULL, NULL, access_handler, l,
	    MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	/* libmicrohttpd copied what it needs; the key need not stay in memory. */
	if (l->key_pem) {
		wipe(l->key_pem, l->key_len);
	}
	if (!l->d)
		return -EINVAL;
	l->fd = -1;     /* owned by libmicrohttpd now */
	di = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di)
		return -EINVAL;
	r = sd_event_add_io(NET.ev, &l->io, di->epoll_fd, EPOLLIN, on_mhd_io, l);
	if (r < 0)
		return log_err_errno(r, "listener %s: cannot watch its sockets", l->name);
	sd_event_source_set_description(l->io, "listener");
	sd_event_source_set_prepare(l->io, on_prepare);
	log_info("listener %s ready (%s)", l->name, conf_transport_name(l->transport));
	return 0;
}

void http_listener_stop(struct net_listener *l)
{
	if (!l->d)
		return;
	/* Suspended requests of this daemon must be resumed before it stops. */
	for (struct http_req *r = suspended_head, *next; r; r = next) {
		next = r->next_suspended;
		if (r->conn->l != l)
			continue;
		detach_waiters(r);
		http_respond_empty(r, MHD_HTTP_SERVICE_UNAVAILABLE);
	}
	MHD_run(l->d);
	l->io = sd_event_source_unref(l->io);
	MHD_stop_daemon(l->d);
	l->d = NULL;
}
