/*
 * mm.c - the worker's end of the monitor channel: every request the worker
 * sends, the matching of replies to them, and the readers of those replies
 * (worker, user winrmd).
 *
 * Sizes here come from the network.  Encoding errors are sticky in struct
 * ipc_out, so an oversized field makes the call return 0 and the caller
 * answers with a fault; nothing here can abort the worker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mm.h"
#include "util.h"

struct mm_call {
	struct mm_call *next;
	uint32_t id;
	mm_reply_fn fn;
	void (*settled)(uint32_t id);
	void *ctx;
};

static struct {
	struct ipc_chan *ch;
	struct mm_call *calls;
	uint32_t next_id;
} MM = { .next_id = 1 };

void mm_attach(struct ipc_chan *ch)
{
	MM.ch = ch;
}

static void send_msg(struct ipc_out *o)
{
	if (o->err)
		log_warn_errno(o->err, "not sending IPC message %u", ipc_out_type(o));
	if (MM.ch)
		ipc_send(MM.ch, o);
	else
		ipc_out_free(o);
}

/* A request whose second field is the id its reply will carry. */
static uint32_t call_begin(struct ipc_out *o, uint32_t type)
{
	uint32_t id = MM.next_id++;

	if (MM.next_id == 0)
		MM.next_id = 1;
	ipc_out_init(o, type);
	ipc_put_u32(o, id);
	return id;
}

static uint32_t call_end2(struct ipc_out *o, uint32_t id, mm_reply_fn fn,
    void (*settled)(uint32_t id), void *ctx)
{
	struct mm_call *c;

	if (o->err) {
		log_warn_errno(o->err, "not sending IPC message %u", ipc_out_type(o));
		ipc_out_free(o);
		return 0;
	}
	c = xcalloc(1, sizeof *c);
	c->id = id;
	c->fn = fn;
	c->settled = settled;
	c->ctx = ctx;
	c->next = MM.calls;
	MM.calls = c;
	send_msg(o);
	return id;      /* replies are only read from the event loop: c is still here */
}

static uint32_t call_end(struct ipc_out *o, uint32_t id, mm_reply_fn fn, void *ctx)
{
	return call_end2(o, id, fn, NULL, ctx);
}

void mm_cancel(uint32_t id)
{
	for (struct mm_call *c = MM.calls; c; c = c->next)
		if (c->id == id && c->fn) {
			mm_reply_fn fn = c->fn;
			c->fn = NULL;   /* the reply, when it comes, is dropped */
			fn(c->ctx, NULL);
		}
}

bool mm_pending(uint32_t id)
{
	for (struct mm_call *c = MM.calls; c; c = c->next)
		if (c->id == id)
			return true;
	return false;
}

bool mm_dispatch_reply(struct ipc_msg *m)
{
	uint32_t id = ipc_u32(m);

	for (struct mm_call **pp = &MM.calls; *pp; pp = &(*pp)->next) {
		struct mm_call *c = *pp;
		if (c->id != id)
			continue;
		*pp = c->next;
		if (c->fn)
			c->fn(c->ctx, m);
		else
			m->off = m->len;        /* cancelled: drop it whole */
		for (size_t i = 0; i < m->nfds; i++)
			if (m->fds[i] >= 0) {   /* fds of a cancelled spawn */
				close(m->fds[i]);
				m->fds[i] = -1;
			}
		if (c->settled)
			c->settled(c->id);
		free(c);
		return true;
	}
	m->bad = true;
	return false;
}

/* ---- requests --------------------------------------------------------- */

uint32_t mm_auth_password(const char *user, const char *password, const char *remote,
    mm_reply_fn fn, void (*settled)(uint32_t id), void *ctx)
{
	struct ipc_out o;
	uint32_t id = call_begin(&o, IPC_AUTH_PASSWORD);

	o.secret = true;
	ipc_put_str(&o, user);
	ipc_put_str(&o, password);
	ipc_put_str(&o, remote);
	return call_end2(&o, id, fn, settled, ctx);
}

uint32_t mm_cert_login(const unsigned char *const *der, const size_t *len, size_t n,
    const char *remote, mm_reply_fn fn, void *ctx)
{
	struct ipc_out o;
	uint32_t id = call_begin(&o, IPC_CERT_LOGIN);

	ipc_put_u32(&o, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		ipc_put_bytes(&o, der[i], len[i]);
	ipc_put_str(&o, remote);
	return call_end(&o, id, fn, ctx);
}

uint32_t mm_ntlm_challenge(mm_reply_fn fn, void *ctx)
{
	struct ipc_out o;
	uint32_t id = call_begin(&o, IPC_NTLM_CHALLENGE);

	return call_end(&o, id, fn, ctx);
}

uint32_t mm_ntlm_verify(const struct mm_ntlm_verify *q, mm_reply_fn fn, void *ctx)
{
	struct ipc_out o;
	uint32_t id = call_begin(&o, IPC_NTLM_VERIFY);

	o.secret = true;
	ipc_put_str(&o, q->user);
	ipc_put_str(&o, q->domain);
	ipc_put_bytes(&o, q->challenge, 8);
	ipc_put_bytes(&o, q->nt, q->nt_len);
	ipc_put_bytes(&o, q->esk ? q->esk : (const unsigned char *)"", q->esk ? q->esk_len : 0);
	ipc_put_u32(&o, q->flags);
	ipc_put_str(&o, q->remote);
	return call_end(&o, id, fn, ctx);
}

uint32_t mm_gss_accept(const unsigned char *token, size_t len, const unsigned char *cb,
    size_t cb_len, bool cb_strict, const char *remote, mm_reply_fn fn, void *ctx)
{
	struct ipc_out o;
	uint32_t id = call_begin(&o, IPC_GSS_ACCEPT);

	ipc_put_bytes(&o, token, len);
	ipc_put_bytes(&o, cb, cb_len);
	ipc_put_u32(&o, cb_strict);
	ipc_put_str(&o, remote);
	return call_end(&o, id, fn, ctx);
}

uint32_t mm_session_open(uint64_t login, const char *shell_id, const char *resource,
    const char *remote, mm_reply_fn fn, void *ctx)
{
	struct ipc_out o;
	uint32_t id = call_begin(&o, IPC_SESSION_OPEN);

	ipc_put_u64(&o, login);
	ipc_put_str(&o, shell_id);
	ipc_put_str(&o, resource);
	ipc_put_str(&o, remote);
	return call_end(&o, id, fn, ctx);
}

uint32_t mm_spawn(uint64_t login, uint64_t session, uint32_t flags, const char *cwd,
    size_t argc, char *const *argv, size_t envc, char *const *env, mm_reply_fn fn, void *ctx)
{
	struct ipc_out o;
	uint32_t id = call_begin(&o, IPC_SPAWN);

	ipc_put_u64(&o, login);
	ipc_put_u64(&o, session);
	ipc_put_u32(&o, flags);
	ipc_put_str(&o, cwd ? cwd : "");
	ipc_put_u32(&o, (uint32_t)argc);
	for (size_t i = 0; i < argc; i++)
		ipc_put_str(&o, argv[i]);
	ipc_put_u32(&o, (uint32_t)envc);
	for (size_t i = 0; i < envc; i++)
		ipc_put_str(&o, env[i]);
	return call_end(&o, id, fn, ctx);
}

/* ---- notices ---------------------------------------------------------- */

void mm_login_release(uint64_t login)
{
	struct ipc_out o;

	ipc_out_init(&o, IPC_LOGIN_RELEASE);
	ipc_put_u64(&o, login);
	send_msg(&o);
}

void mm_signal(uint64_t session, pid_t pid, int sig)
{
	struct ipc_out o;

	ipc_out_init(&o, IPC_SIGNAL);
	ipc_put_u64(&o, session);
	ipc_put_u32(&o, (uint32_t)pid);
	ipc_put_u32(&o, (uint32_t)sig);
	send_msg(&o);
}

void mm_session_close(uint64_t session)
{
	struct ipc_out o;

	ipc_out_init(&o, IPC_SESSION_CLOSE);
	ipc_put_u64(&o, session);
	send_msg(&o);
}

void mm_worker_ready(void)
{
	struct ipc_out o;

	ipc_out_init(&o, IPC_WORKER_READY);
	send_msg(&o);
}

/* ---- replies ---------------------------------------------------------- */

bool mm_read_login(struct ipc_msg *m, struct mm_login *v)
{
	memset(v, 0, sizeof *v);
	v->result = ipc_u32(m);
	v->login = ipc_u64(m);
	v->user = ipc_str(m);
	v->uid = ipc_u32(m);
	(void)ipc_u32(m);               /* gid: the monitor sets it on spawn, not us */
	if (m->type == IPC_NTLM_RESULT || m->type == IPC_GSS_RESULT)
		v->key = ipc_bytes(m, &v->key_len);
	if (m->type == IPC_GSS_RESULT)
		v->token = ipc_bytes(m, &v->token_len);
	return ipc_end(m);
}

bool mm_read_challenge(struct ipc_msg *m, const unsigned char **ch, size_t *len)
{
	*ch = ipc_bytes(m, len);
	return ipc_end(m);
}

bool mm_read_session(struct ipc_msg *m, int32_t *result, uint64_t *session)
{
	*result = ipc_i32(m);
	*session = ipc_u64(m);
	return ipc_end(m);
}

bool mm_read_spawn(struct ipc_msg *m, int32_t *result, uint32_t *pid, int fds[3])
{
	*result = ipc_i32(m);
	*pid = ipc_u32(m);
	for (int i = 0; i < 3; i++)
		fds[i] = *result == 0 ? ipc_fd(m, (size_t)i) : -1;
	if (ipc_end(m))
		return true;
	for (int i = 0; i < 3; i++)
		close_safe(&fds[i]);
	return false;
}
