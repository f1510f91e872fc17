/*
 * mon_login.c - logins: passwords through PAM, NTLM, Kerberos and client
 * certificates, checked by the monitor itself (monitor, root).
 *
 * A login the monitor verified is remembered by id; the worker names that id
 * in every later request, and a worker that never logged anyone in cannot
 * make one up.  Failed logins are answered late, which paces guessing even by
 * a compromised worker.
 */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "gss.h"
#include "ipc.h"
#include "log.h"
#include "mon_int.h"
#include "ntlm.h"
#include "ntstore.h"
#include "util.h"

struct pending_auth {
	struct pending_auth *next;
	uint32_t type;
	uint32_t req;
	uint32_t result;
	struct mon_login *login;
	sd_event_source *timer;
};

struct mon_login *mon_login_find(uint64_t id)
{
	for (size_t i = 0; i < M.n_logins; i++)
		if (M.logins[i]->id == id)
			return M.logins[i];
	return NULL;
}

void mon_login_free(struct mon_login *l)
{
	free(l->user);
	free(l->remote);
	free(l);
}

static void login_release(uint64_t id)
{
	for (size_t i = 0; i < M.n_logins; i++)
		if (M.logins[i]->id == id) {
			mon_login_free(M.logins[i]);
			M.logins[i] = M.logins[--M.n_logins];
			return;
		}
}

static void login_reply2(uint32_t type, uint32_t req, uint32_t result, const struct mon_login *l,
    const unsigned char *key, size_t keylen, const unsigned char *tok, size_t toklen)
{
	struct ipc_out o;

	ipc_out_init(&o, type);
	ipc_put_u32(&o, req);
	ipc_put_u32(&o, result);
	ipc_put_u64(&o, l ? l->id : 0);
	ipc_put_str(&o, l ? l->user : "");
	ipc_put_u32(&o, l ? (uint32_t)l->uid : 0);
	ipc_put_u32(&o, l ? (uint32_t)l->gid : 0);
	if (type == IPC_NTLM_RESULT || type == IPC_GSS_RESULT) {
		o.secret = true;
		ipc_put_bytes(&o, key, keylen);
	}
	if (type == IPC_GSS_RESULT)
		ipc_put_bytes(&o, tok, toklen);
	if (o.err && l) {
		/* An exported context too large to send: the call still gets its answer. */
		log_err_errno(o.err, "login of %s: the answer does not fit an IPC message", l->user);
		ipc_out_free(&o);
		login_release(l->id);
		login_reply2(type, req, IPC_AUTH_ERROR, NULL, NULL, 0, NULL, 0);
		return;
	}
	mon_send_worker(&o);
}

static void login_reply(uint32_t type, uint32_t req, uint32_t result, const struct mon_login *l,
    const unsigned char *key, size_t keylen)
{
	login_reply2(type, req, result, l, key, keylen, NULL, 0);
}

static void auth_reply(uint32_t req, uint32_t result, const struct mon_login *l)
{
	login_reply(IPC_AUTH_RESULT, req, result, l, NULL, 0);
}

static int pending_fire(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct pending_auth *p = userdata, **pp;
	(void)s; (void)usec;

	for (pp = &M.pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			M.n_pending--;
			break;
		}
	login_reply(p->type, p->req, p->result, NULL, NULL, 0);
	sd_event_source_unref(p->timer);
	free(p);
	return 0;
}

void mon_pending_flush(void)
{
	while (M.pending) {
		struct pending_auth *p = M.pending;
		M.pending = p->next;
		sd_event_source_unref(p->timer);
		free(p);
	}
	M.n_pending = 0;
}

/* Failed logins are answered late, without blocking other requests. */
static void reply_delayed(uint32_t type, uint32_t req, uint32_t result)
{
	struct pending_auth *p = xcalloc(1, sizeof *p);

	p->type = type;
	p->req = req;
	p->result = result;
	if (sd_event_add_time_relative(M.ev, &p->timer, CLOCK_MONOTONIC,
	    AUTH_FAIL_DELAY_MS * 1000ULL, 1000, pending_fire, p) < 0) {
		free(p);
		login_reply(type, req, result, NULL, NULL, 0);
		return;
	}
	sd_event_source_set_description(p->timer, "failed-login-delay");
	p->next = M.pending;
	M.pending = p;
	M.n_pending++;
}

/*
 * Each failed login waits AUTH_FAIL_DELAY_MS for its answer, which is what
 * paces guessing, also by a compromised worker.  So that the waiting answers
 * stay bounded without giving up that pace, a login request that arrives
 * while MON_DELAYED_REPLIES_MAX failures wait is refused unchecked, at once.
 * (Password checks already running may add up to MON_AUTH_JOBS_MAX more.)
 */
static bool logins_saturated(uint32_t type, uint32_t req)
{
	if (M.n_pending < MON_DELAYED_REPLIES_MAX)
		return false;
	log_warn("%u failed logins wait for their answer; refusing another one unchecked", M.n_pending);
	login_reply(type, req, IPC_AUTH_ERROR, NULL, NULL, 0);
	return true;
}

/* The identity is proven: check the account is allowed in and remember the login. */
static void login_finish2(uint32_t type, uint32_t req, char *canon, const char *remote,
    const unsigned char *key, size_t keylen, const unsigned char *tok, size_t toklen)
{
	struct mon_login *l;
	struct passwd *pw = getpwnam(canon);

	if (!pw) {
		free(canon);
		login_reply(type, req, IPC_AUTH_ERROR, NULL, NULL, 0);
		return;
	}
	if (!mon_authorized(&M.conf, canon, pw->pw_uid, pw->pw_gid)) {
		log_notice("login of %s from %s refused: not in AllowedUsers or AllowedGroups", canon, remote);
		free(canon);
		login_reply(type, req, IPC_AUTH_FORBIDDEN, NULL, NULL, 0);
		return;
	}
	if (M.n_logins >= MON_MAX_LOGINS) {
		log_warn("login table full (%d); refusing login of %s", MON_MAX_LOGINS, canon);
		free(canon);
		login_reply(type, req, IPC_AUTH_ERROR, NULL, NULL, 0);
		return;
	}
	l = xcalloc(1, sizeof *l);
	l->id = mon_new_id();
	l->user = canon;
	l->uid = pw->pw_uid;
	l->gid = pw->pw_gid;
	l->remote = xstrdup(remote);
	M.logins[M.n_logins++] = l;
	login_reply2(type, req, IPC_AUTH_OK, l, key, keylen, tok, toklen);
}

static void login_finish(uint32_t type, uint32_t req, char *canon, const char *remote,
    const unsigned char *key, size_t keylen)
{
	login_finish2(type, req, canon, remote, key, keylen, NULL, 0);
}

/* A password check running in a child (mon_pam.c). */
struct auth_job {
	struct auth_job *next;
	uint32_t req;
	char *user, *remote;
	struct mon_pam_job *pam;
};

static void auth_job_free(struct auth_job *j)
{
	free(j->user);
	free(j->remote);
	free(j);
}

static void auth_job_unlink(struct auth_job *j)
{
	for (struct auth_job **pp = &M.auth_jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			M.n_auth_jobs--;
			break;
		}
	auth_job_free(j);
}

void mon_auth_jobs_cancel(void)
{
	while (M.auth_jobs) {
		mon_pam_job_cancel(M.auth_jobs->pam);
		auth_job_unlink(M.auth_jobs);
	}
}

static void auth_job_done(void *ctx, int r, char *canon)
{
	struct auth_job *j = ctx;

	if (r == -EPERM || r == -EACCES) {
		log_notice("login of %s from %s failed: %s", j->user, j->remote,
		    r == -EPERM ? "bad credentials" : "account refused by PAM");
		reply_delayed(IPC_AUTH_RESULT, j->req,
		    r == -EPERM ? IPC_AUTH_BAD_CREDENTIALS : IPC_AUTH_ACCOUNT);
	} else if (r < 0) {
		auth_reply(j->req, IPC_AUTH_ERROR, NULL);
	} else {
		login_finish(IPC_AUTH_RESULT, j->req, canon, j->remote, NULL, 0);
	}
	auth_job_unlink(j);
}

void mon_h_auth_password(struct ipc_msg *m)
{
	uint32_t req = ipc_u32(m);
	const char *user = ipc_str(m);
	const char *password = ipc_str(m);
	const char *remote = ipc_str(m);
	struct auth_job *j;
	int r;

	if (!ipc_end(m) || logins_saturated(IPC_AUTH_RESULT, req))
		return;
	if (!mon_str_clean(user, AUTH_MAX_USER) || strlen(password) > AUTH_MAX_PASSWORD ||
	    !mon_str_clean(remote, 64)) {
		reply_delayed(IPC_AUTH_RESULT, req, IPC_AUTH_BAD_CREDENTIALS);
		return;
	}
	/* The worker queues beyond HTTP_UNAUTH_PENDING_MAX; this bounds a worker that does not. */
	if (M.n_auth_jobs >= MON_AUTH_JOBS_MAX) {
		log_warn("%u password checks already running; refusing the login of %s",
		    M.n_auth_jobs, user);
		auth_reply(req, IPC_AUTH_ERROR, NULL);
		return;
	}
	j = xcalloc(1, sizeof *j);
	j->req = req;
	j->user = xstrdup(user);
	j->remote = xstrdup(remote);
	r = mon_pam_authenticate_start(M.ev, M.conf.service.pam_service, user, password, remote,
	    auth_job_done, j, &j->pam);
	if (r < 0) {
		log_err("cannot start the password check of %s: %s", user, strerror(-r));
		auth_reply(req, IPC_AUTH_ERROR, NULL);
		auth_job_free(j);
		return;
	}
	j->next = M.auth_jobs;
	M.auth_jobs = j;
	M.n_auth_jobs++;
}

/* A local account's NTLM domain: empty, ".", or this host's own name. */
static bool ntlm_domain_local(const char *domain)
{
	char host[256] = "";
	size_t n;

	if (!*domain || !strcmp(domain, "."))
		return true;
	gethostname(host, sizeof host - 1);
	n = strcspn(host, ".");
	return !strcasecmp(domain, host) || (strlen(domain) == n && !strncasecmp(domain, host, n)) ||
	    (strlen(domain) == MIN(n, 15) && !strncasecmp(domain, host, MIN(n, 15)));
}

void mon_h_gss_accept(struct ipc_msg *m)
{
	uint32_t req = ipc_u32(m);
	size_t tl, cbl;
	const unsigned char *tok = ipc_bytes(m, &tl), *cb = ipc_bytes(m, &cbl);
	uint32_t strict = ipc_u32(m);
	const char *remote = ipc_str(m);
	struct buf out, exp;
	char why[512] = "", *user = NULL;
	int r;

	if (!ipc_end(m) || logins_saturated(IPC_GSS_RESULT, req))
		return;
	if (!mon_str_clean(remote, 64) || !M.conf.auth.kerberos) {
		reply_delayed(IPC_GSS_RESULT, req, IPC_AUTH_BAD_CREDENTIALS);
		return;
	}
	buf_init(&out, 0);
	buf_init(&exp, 0);
	/* MIT parses the token; it runs here because only root may read the keytab. */
	r = gss_accept(M.conf.auth.keytab, tok, tl, cb, cbl, strict != 0, &user, &out, &exp,
	    why, sizeof why);
	if (r < 0) {
		log_notice("Kerberos login from %s failed: %s", remote, why);
		buf_free(&out);
		buf_free_secret(&exp);
		reply_delayed(IPC_GSS_RESULT, req, r == -EIO ? IPC_AUTH_ERROR : IPC_AUTH_BAD_CREDENTIALS);
		return;
	}
	if (mon_pam_account(M.conf.service.pam_service, user, remote) < 0) {
		log_notice("Kerberos login of %s from %s: account refused", user, remote);
		free(user);
		buf_free(&out);
		buf_free_secret(&exp);
		reply_delayed(IPC_GSS_RESULT, req, IPC_AUTH_ACCOUNT);
		return;
	}
	login_finish2(IPC_GSS_RESULT, req, user, remote, exp.data, exp.len, out.data, out.len);
	buf_free(&out);
	buf_free_secret(&exp);
}

void mon_h_cert_login(struct ipc_msg *m)
{
	uint32_t req = ipc_u32(m), n = ipc_u32(m);
	const unsigned char *der[AUTH_MAX_CERT_CHAIN];
	size_t len[AUTH_MAX_CERT_CHAIN];
	const char *remote;
	char why[512] = "", *user = NULL;

	if (n == 0 || n > AUTH_MAX_CERT_CHAIN) {
		m->bad = true;
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		der[i] = ipc_bytes(m, &len[i]);
	remote = ipc_str(m);
	if (!ipc_end(m) || logins_saturated(IPC_AUTH_RESULT, req))
		return;
	if (!M.conf.auth.certificate || !mon_str_clean(remote, 64) ||
	    mon_cert_map(&M.conf, der, len, n, &user, why, sizeof why) < 0) {
		log_notice("certificate login from %s refused: %s", remote,
		    M.conf.auth.certificate ? why : "Certificate authentication is disabled");
		reply_delayed(IPC_AUTH_RESULT, req, IPC_AUTH_BAD_CREDENTIALS);
		return;
	}
	if (mon_pam_account(M.conf.service.pam_service, user, remote) < 0) {
		log_notice("certificate login of %s from %s: account refused", user, remote);
		free(user);
		reply_delayed(IPC_AUTH_RESULT, req, IPC_AUTH_ACCOUNT);
		return;
	}
	login_finish(IPC_AUTH_RESULT, req, user, remote, NULL, 0);
}

/* Forget challenges whose handshake cannot still be running. */
static void challenges_expire(void)
{
	uint64_t now = now_ms();
	size_t k = 0;

	while (k < M.n_challenges && now - M.challenges[k].issued_ms > MON_NTLM_CHALLENGE_TTL_MS)
		k++;
	if (k) {
		memmove(M.challenges, M.challenges + k, (M.n_challenges - k) * sizeof *M.challenges);
		M.n_challenges -= k;
	}
}

void mon_ntlm_challenge_issue(unsigned char out[8])
{
	struct ntlm_challenge *c;

	challenges_expire();
	if (M.n_challenges == MON_NTLM_CHALLENGES_MAX) {
		/* The oldest handshake loses; its AUTHENTICATE will be refused. */
		memmove(M.challenges, M.challenges + 1, (M.n_challenges - 1) * sizeof *M.challenges);
		M.n_challenges--;
	}
	c = &M.challenges[M.n_challenges++];
	random_bytes(c->ch, sizeof c->ch);
	c->issued_ms = now_ms();
	memcpy(out, c->ch, sizeof c->ch);
}

void mon_ntlm_challenges_forget(void)
{
	M.n_challenges = 0;
}

void mon_h_ntlm_challenge(struct ipc_msg *m)
{
	uint32_t req = ipc_u32(m);
	unsigned char ch[8];
	struct ipc_out o;

	if (!ipc_end(m))
		return;
	mon_ntlm_challenge_issue(ch);
	ipc_out_init(&o, IPC_NTLM_CHALLENGE_RESULT);
	ipc_put_u32(&o, req);
	ipc_put_bytes(&o, ch, sizeof ch);
	mon_send_worker(&o);
}

bool mon_ntlm_challenge_take(const unsigned char ch[8])
{
	challenges_expire();
	for (size_t i = 0; i < M.n_challenges; i++)
		if (!memcmp(M.challenges[i].ch, ch, 8)) {
			memmove(M.challenges + i, M.challenges + i + 1,
			    (M.n_challenges - i - 1) * sizeof *M.challenges);
			M.n_challenges--;
			return true;
		}
	return false;
}

void mon_h_ntlm_verify(struct ipc_msg *m)
{
	uint32_t req = ipc_u32(m);
	const char *user = ipc_str(m), *domain = ipc_str(m);
	size_t chl, ntl, eskl;
	const unsigned char *chal = ipc_bytes(m, &chl), *nt = ipc_bytes(m, &ntl), *esk = ipc_bytes(m, &eskl);
	uint32_t flags = ipc_u32(m);
	const char *remote = ipc_str(m);
	unsigned char hash[16], key[16];
	int r;

	if (!ipc_end(m) || logins_saturated(IPC_NTLM_RESULT, req))
		return;
	if (!mon_str_clean(user, AUTH_MAX_USER) || strlen(domain) > 256 || chl != 8 ||
	    !mon_str_clean(remote, 64)) {
		reply_delayed(IPC_NTLM_RESULT, req, IPC_AUTH_BAD_CREDENTIALS);
		return;
	}
	if (!mon_ntlm_challenge_take(chal)) {
		log_warn("NTLM login of %s from %s refused: its challenge was not issued by the monitor "
		    "or was already used (a replayed AUTHENTICATE?)", user, remote);
		reply_delayed(IPC_NTLM_RESULT, req, IPC_AUTH_BAD_CREDENTIALS);
		return;
	}
	if (!ntlm_domain_local(domain)) {
		log_notice("NTLM login of %s\\%s from %s refused: not a local account", domain, user, remote);
		reply_delayed(IPC_NTLM_RESULT, req, IPC_AUTH_BAD_CREDENTIALS);
		return;
	}
	r = ntstore_lookup(M.conf.auth.ntlm_store, user, hash);
	if (r == -EPERM)
		log_err("%s is not a root-owned mode 0600 file; NTLM logins are refused",
		    M.conf.auth.ntlm_store);
	if (r == 0)
		r = ntlm_verify_v2(hash, user, domain, chal, nt, ntl, esk, eskl, flags, key);
	wipe(hash, sizeof hash);
	if (r < 0) {
		log_notice("NTLM login of %s from %s failed%s", user, remote,
		    r == -ENOENT ? ": no NTLM password set (winrmctl ntlm set-password)" : "");
		reply_delayed(IPC_NTLM_RESULT, req, IPC_AUTH_BAD_CREDENTIALS);
		return;
	}
	if (mon_pam_account(M.conf.service.pam_service, user, remote) < 0) {
		wipe(key, sizeof key);
		log_notice("NTLM login of %s from %s: account refused", user, remote);
		reply_delayed(IPC_NTLM_RESULT, req, IPC_AUTH_ACCOUNT);
		return;
	}
	login_finish(IPC_NTLM_RESULT, req, xstrdup(user), remote, key, sizeof key);
	wipe(key, sizeof key);
}

void mon_h_login_release(struct ipc_msg *m)
{
	uint64_t id = ipc_u64(m);

	if (ipc_end(m))
		login_release(id);
}
