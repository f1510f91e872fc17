/*
 * net.c - the worker's event loop, its channel to the monitor and the
 * configuration hand-over (worker, user winrmd).
 *
 * Everything here runs in one sd-event loop: libmicrohttpd's epoll fds,
 * the IPC channel, runspace pipes and timers.  Nothing blocks.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <systemd/sd-event.h>

#include "http.h"
#include "log.h"
#include "mm.h"
#include "net.h"
#include "ntlm.h"
#include "soap.h"
#include "util.h"
#include "winrmd.h"

struct net_state NET;

static void cert_hash(struct net_listener *l)
{
	BIO *b = BIO_new_mem_buf(l->cert_pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	const EVP_MD *md = EVP_sha256();
	int nid;

	/* RFC 5929: the certificate's own hash unless that is MD5/SHA-1, then SHA-256. */
	if (x && OBJ_find_sigid_algs(X509_get_signature_nid(x), &nid, NULL) &&
	    (nid == NID_sha384 || nid == NID_sha512))
		md = EVP_get_digestbynid(nid);
	if (x)
		X509_digest(x, md, l->cert_hash, &l->cert_hash_len);
	X509_free(x);
	BIO_free(b);
}

static void listener_free(struct net_listener *l)
{
	if (!l)
		return;
	http_listener_stop(l);
	close_safe(&l->fd);
	free(l->name);
	free(l->cert_pem);
	free(l->trust_pem);
	freezero(l->key_pem, l->key_len + 1);
	free(l);
}

static void h_listener(struct ipc_msg *m)
{
	const char *name = ipc_str(m);
	uint32_t transport = ipc_u32(m);
	const char *cert = ipc_str(m);
	size_t keylen;
	const unsigned char *key = ipc_bytes(m, &keylen);
	const char *trust = ipc_str(m);
	int fd = ipc_fd(m, 0);
	struct net_listener *l;

	if (!ipc_end(m) || transport > 1 || NET.n_staged >= CONF_MAX_LISTENERS) {
		m->bad = true;
		if (fd >= 0)
			close(fd);
		return;
	}
	l = xcalloc(1, sizeof *l);
	l->name = xstrdup(name);
	l->transport = (int)transport;
	l->fd = fd;
	if (transport == CONF_HTTPS) {
		l->cert_pem = xstrdup(cert);
		l->key_pem = xmalloc(keylen + 1);
		memcpy(l->key_pem, key, keylen);
		l->key_pem[keylen] = '\0';
		l->key_len = keylen;
		if (*trust)
			l->trust_pem = xstrdup(trust);
		cert_hash(l);
	}
	{
		/* Identity: name, transport, key material and the limits libmicrohttpd was given. */
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		unsigned int n = 0;
		EVP_DigestInit_ex(md, EVP_sha256(), NULL);
		EVP_DigestUpdate(md, name, strlen(name) + 1);
		EVP_DigestUpdate(md, &transport, sizeof transport);
		EVP_DigestUpdate(md, cert, strlen(cert) + 1);
		EVP_DigestUpdate(md, key, keylen);
		EVP_DigestUpdate(md, trust, strlen(trust) + 1);
		EVP_DigestFinal_ex(md, l->ident, &n);
		EVP_MD_CTX_free(md);
	}
	NET.staged[NET.n_staged++] = l;
}

static void h_config_done(struct ipc_msg *m)
{
	struct conf next;
	char err[512];

	if (!ipc_end(m))
		return;
	NET.staging = false;
	if (!NET.staged_conf || conf_parse(NET.staged_conf, strlen(NET.staged_conf), "(monitor)",
	    &next, err, sizeof err) < 0) {
		log_err("configuration from the monitor does not parse: %s", err);
		m->bad = true;
		return;
	}
	free(NET.staged_conf);
	NET.staged_conf = NULL;
	unsigned long long old_max_conn = NET.configured ? NET.conf.service.max_connections : 0;
	unsigned long long old_max_ip = NET.configured ? NET.conf.service.max_connections_per_ip : 0;
	if (NET.configured)
		conf_free(&NET.conf);
	NET.conf = next;
	NET.facts = NET.staged_facts;
	NET.configured = true;
	NET.conf_gen++;
	/*
	 * A listener the reload did not change keeps running, with its
	 * connections; the rest are replaced.  The limits libmicrohttpd was
	 * started with count as part of a listener.
	 */
	{
		struct net_listener *keep[CONF_MAX_LISTENERS];
		size_t nk = 0;
		bool limits_same = old_max_conn == NET.conf.service.max_connections &&
		    old_max_ip == NET.conf.service.max_connections_per_ip;

		for (size_t i = 0; i < NET.n_staged; i++) {
			struct net_listener *l = NET.staged[i], *old = NULL;
			for (size_t j = 0; j < NET.n_ls && limits_same; j++)
				if (NET.ls[j] && !memcmp(NET.ls[j]->ident, l->ident, sizeof l->ident)) {
					old = NET.ls[j];
					NET.ls[j] = NULL;
				}
			if (old) {
				listener_free(l);
				keep[nk++] = old;
			} else if (http_listener_start(l) < 0) {
				log_err("listener %s could not start", l->name);
				listener_free(l);
			} else {
				keep[nk++] = l;
			}
		}
		for (size_t j = 0; j < NET.n_ls; j++)
			listener_free(NET.ls[j]);
		memcpy(NET.ls, keep, nk * sizeof *keep);
		NET.n_ls = nk;
	}
	NET.n_staged = 0;
	mm_worker_ready();
}

static void h_config(struct ipc_msg *m)
{
	const char *conf = ipc_str(m);
	uint32_t facts = ipc_u32(m);

	if (!ipc_end(m))
		return;
	free(NET.staged_conf);
	NET.staged_conf = xstrdup(conf);
	NET.staged_facts = facts;
	for (size_t i = 0; i < NET.n_staged; i++)
		listener_free(NET.staged[i]);
	NET.n_staged = 0;
	NET.staging = true;
}

static void h_reply(struct ipc_msg *m)
{
	mm_dispatch_reply(m);           /* a reply nobody asked for is bad */
}

static struct {
	const struct net_events *ev[NET_MAX_SUBSCRIBERS];
	size_t n;
} SUBS;

void net_subscribe(const struct net_events *ev)
{
	if (SUBS.n == NET_MAX_SUBSCRIBERS)
		fatal("too many subscribers to the monitor's events (raise NET_MAX_SUBSCRIBERS)");
	SUBS.ev[SUBS.n++] = ev;
}

static void h_session_killed(struct ipc_msg *m)
{
	uint64_t session = ipc_u64(m);

	if (!ipc_end(m))
		return;
	for (size_t i = 0; i < SUBS.n; i++)
		if (SUBS.ev[i]->session_killed)
			SUBS.ev[i]->session_killed(session);
}

static void h_child_exit(struct ipc_msg *m)
{
	uint64_t session = ipc_u64(m);
	uint32_t pid = ipc_u32(m);
	int32_t status = ipc_i32(m);

	if (!ipc_end(m))
		return;
	for (size_t i = 0; i < SUBS.n; i++)
		if (SUBS.ev[i]->child_exited)
			SUBS.ev[i]->child_exited(session, (int)pid, status);
}

/*
 * What the monitor may send, and when.  A configuration arrives as CONFIG,
 * its LISTENERs and CONFIG_DONE, first at start and then on each reload;
 * replies only answer calls, which need a configured worker.  A child may
 * outlive the worker that started it, so its exit can reach a new one.
 */
#define LIVE (NET_ST_SERVING | NET_ST_RESTAGING)
#define STAGING (NET_ST_STAGING | NET_ST_RESTAGING)
const struct ipc_handler net_ipc_handlers[] = {
	{ IPC_CONFIG,         "CONFIG",         IPC_FROM_MONITOR, NET_ST_NEW | NET_ST_SERVING, h_config },
	{ IPC_LISTENER,       "LISTENER",       IPC_FROM_MONITOR, STAGING, h_listener },
	{ IPC_CONFIG_DONE,    "CONFIG_DONE",    IPC_FROM_MONITOR, STAGING, h_config_done },
	{ IPC_AUTH_RESULT,    "AUTH_RESULT",    IPC_FROM_MONITOR, LIVE, h_reply },
	{ IPC_NTLM_CHALLENGE_RESULT, "NTLM_CHALLENGE_RESULT", IPC_FROM_MONITOR, LIVE, h_reply },
	{ IPC_NTLM_RESULT,    "NTLM_RESULT",    IPC_FROM_MONITOR, LIVE, h_reply },
	{ IPC_GSS_RESULT,     "GSS_RESULT",     IPC_FROM_MONITOR, LIVE, h_reply },
	{ IPC_SESSION_RESULT, "SESSION_RESULT", IPC_FROM_MONITOR, LIVE, h_reply },
	{ IPC_SPAWN_RESULT,   "SPAWN_RESULT",   IPC_FROM_MONITOR, LIVE, h_reply },
	{ IPC_SESSION_KILLED, "SESSION_KILLED", IPC_FROM_MONITOR, NET_ST_ALL, h_session_killed },
	{ IPC_CHILD_EXIT,     "CHILD_EXIT",     IPC_FROM_MONITOR, NET_ST_ALL, h_child_exit },
};
#undef LIVE
#undef STAGING
const size_t net_ipc_n_handlers = sizeof net_ipc_handlers / sizeof net_ipc_handlers[0];

unsigned net_ipc_state(void)
{
	if (NET.staging)
		return NET.configured ? NET_ST_RESTAGING : NET_ST_STAGING;
	return NET.configured ? NET_ST_SERVING : NET_ST_NEW;
}

static void on_mon_msg(struct ipc_chan *ch, struct ipc_msg *m, void *userdata)
{
	(void)ch; (void)userdata;

	ipc_dispatch(net_ipc_handlers, net_ipc_n_handlers, net_ipc_state(), m);
}

static void on_mon_close(struct ipc_chan *ch, void *userdata)
{
	(void)ch; (void)userdata;
	/* Without the monitor nobody can log in: stop, the monitor restarts us. */
	log_err("monitor channel closed; exiting");
	sd_event_exit(NET.ev, 1);
}

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	(void)s; (void)si; (void)userdata;
	sd_event_exit(NET.ev, 0);
	return 0;
}

int net_main(bool debug, void (*start)(void))
{
	struct ucred cred;
	socklen_t cl = sizeof cred;
	sigset_t ss;
	int r;
	(void)debug;

	/* The channel must be the monitor's: a root peer on a seqpacket pair. */
	if (getsockopt(WINRMD_WORKER_IPC_FD, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
	    (cred.uid != 0 && cred.uid != getuid()))
		fatal("winrmd-net must be started by the winrmd monitor");
	close(WINRMD_WORKER_IPC_FD + 1);        /* the executable fd used by execveat */
	if (getuid() == 0)
		log_warn("worker is running as root (the monitor could not drop privileges)");
	gethostname(NET.hostname, sizeof NET.hostname - 1);
	soap_init();
	if (ntlm_crypto_init() < 0)
		log_warn("OpenSSL's legacy provider (MD4, RC4) is missing: NTLM is unavailable");
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sd_event_new(&NET.ev) < 0)
		fatal("sd_event_new failed");
	if (ev_add_signal(NET.ev, SIGTERM, on_term, "sigterm") < 0 ||
	    ev_add_signal(NET.ev, SIGINT, on_term, "sigint") < 0 ||
	    ev_add_signal(NET.ev, SIGHUP, NULL, "sighup") < 0)
		fatal("cannot set up the worker's event loop");
	if (ipc_chan_new(NET.ev, WINRMD_WORKER_IPC_FD, on_mon_msg, on_mon_close, NULL, &NET.mon) < 0)
		fatal("ipc channel");
	mm_attach(NET.mon);
	start();
	r = sd_event_loop(NET.ev);
	for (size_t i = 0; i < SUBS.n; i++)
		if (SUBS.ev[i]->shutdown)
			SUBS.ev[i]->shutdown();
	for (size_t i = 0; i < NET.n_ls; i++)
		listener_free(NET.ls[i]);
	return r == 0 ? 0 : 1;
}
