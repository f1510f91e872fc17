/*
 * mm.h - the worker's end of the monitor channel: one call per request the
 * worker may make, one reader per reply it may get (worker).
 *
 * Nothing else in the worker builds or reads an IPC message to or from the
 * monitor; the messages the monitor sends unasked are dispatched by net.c's
 * table.  Named after OpenSSH's mm_* wrappers, which play the same part.
 */
#ifndef WINRMD_MM_H
#define WINRMD_MM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc.h"

/* The reply, positioned after the request id, or NULL when the channel is
 * gone or the call was cancelled. */
typedef void (*mm_reply_fn)(void *ctx, struct ipc_msg *reply);

/*
 * Requests that have an answer.  Each returns the call id for mm_cancel, or
 * 0 when the message could not be encoded (a field past the IPC limits):
 * then fn is never called and ctx stays the caller's.
 */
/* settled(id) runs when the monitor has answered, even after mm_cancel: a
 * password check costs the monitor until then. */
uint32_t mm_auth_password(const char *user, const char *password, const char *remote,
    mm_reply_fn fn, void (*settled)(uint32_t id), void *ctx);
uint32_t mm_cert_login(const unsigned char *const *der, const size_t *len, size_t n,
    const char *remote, mm_reply_fn fn, void *ctx);
uint32_t mm_ntlm_challenge(mm_reply_fn fn, void *ctx);
struct mm_ntlm_verify {
	const char *user, *domain;
	const unsigned char *challenge;         /* 8 bytes, as the monitor issued it */
	const unsigned char *nt;
	size_t nt_len;
	const unsigned char *esk;               /* encrypted session key, or NULL */
	size_t esk_len;
	uint32_t flags;
	const char *remote;
};
uint32_t mm_ntlm_verify(const struct mm_ntlm_verify *q, mm_reply_fn fn, void *ctx);
uint32_t mm_gss_accept(const unsigned char *token, size_t len, const unsigned char *cb,
    size_t cb_len, bool cb_strict, const char *remote, mm_reply_fn fn, void *ctx);
uint32_t mm_session_open(uint64_t login, const char *shell_id, const char *resource,
    const char *remote, mm_reply_fn fn, void *ctx);
uint32_t mm_spawn(uint64_t login, uint64_t session, uint32_t flags, const char *cwd,
    size_t argc, char *const *argv, size_t envc, char *const *env, mm_reply_fn fn, void *ctx);
/* Drop the answer of call id when it comes; fn gets NULL now. */
void mm_cancel(uint32_t id);
/* The monitor still owes call id an answer. */
bool mm_pending(uint32_t id);

/* Notices, which have no answer. */
void mm_login_release(uint64_t login);
void mm_signal(uint64_t session, pid_t pid, int sig);
void mm_session_close(uint64_t session);
void mm_worker_ready(void);

/*
 * Readers of the replies: each reads the whole message and returns false
 * when it is malformed (the message is then bad and the channel dropped).
 */
struct mm_login {               /* IPC_AUTH_RESULT, IPC_NTLM_RESULT, IPC_GSS_RESULT */
	uint32_t result;            /* IPC_AUTH_* */
	uint64_t login;
	const char *user;           /* pointers are into the reply */
	uint32_t uid;
	const unsigned char *key;   /* NTLM: the session key; GSS: the exported context */
	size_t key_len;
	const unsigned char *token; /* GSS: the token for the client */
	size_t token_len;
};
bool mm_read_login(struct ipc_msg *m, struct mm_login *v);
bool mm_read_challenge(struct ipc_msg *m, const unsigned char **ch, size_t *len);
bool mm_read_session(struct ipc_msg *m, int32_t *result, uint64_t *session);
/* On success (result 0) fds are the child's stdin, stdout and stderr and now
 * the caller's; otherwise they are -1. */
bool mm_read_spawn(struct ipc_msg *m, int32_t *result, uint32_t *pid, int fds[3]);

/* net.c's table hands every reply here; false when nobody asked for it. */
bool mm_dispatch_reply(struct ipc_msg *m);
/* The channel the calls go over (set by net.c once it is up). */
void mm_attach(struct ipc_chan *ch);

#endif
