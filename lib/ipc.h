/*
 * ipc.h - the typed message channel between the monitor and the worker.
 *
 * Used by both.  A SOCK_SEQPACKET socketpair carries one message per packet:
 * a u32 type, then fields (u32, u64, length-prefixed strings/bytes), plus up
 * to IPC_MAX_FDS descriptors.  The reader checks every length against the
 * packet; a short field, a trailing byte, an unknown type or an unexpected
 * descriptor marks the message bad, and a bad message is fatal to the
 * channel (ipc_chan closes it).  There is no way to "skip" a field.
 */
#ifndef WINRMD_IPC_H
#define WINRMD_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "wlimits.h"
#include "util.h"

enum ipc_type {
	/* monitor -> worker */
	IPC_CONFIG = 1,          /* str conf_dump, u32 facts (IPC_FACT_*) */
	IPC_LISTENER,            /* str name, u32 transport, str cert_pem, bytes key_pem, str trust_pem; fd */
	IPC_CONFIG_DONE,         /* (empty) */
	IPC_AUTH_RESULT,         /* u32 req, u32 result, u64 login, str user, u32 uid, u32 gid */
	IPC_SESSION_RESULT,      /* u32 req, i32 result, u64 session */
	IPC_SPAWN_RESULT,        /* u32 req, i32 result, u32 pid; fds stdin, stdout, stderr */
	IPC_CHILD_EXIT,          /* u64 session, u32 pid, i32 wait status */
	IPC_NTLM_RESULT,         /* u32 req, u32 result, u64 login, str user, u32 uid, u32 gid, bytes session key */
	IPC_SESSION_KILLED,      /* u64 session: an admin ended it (winrmctl shells kill) */
	IPC_GSS_RESULT,          /* u32 req, u32 result, u64 login, str user, u32 uid, u32 gid,
	                            bytes exported context, bytes reply token */
	IPC_NTLM_CHALLENGE_RESULT, /* u32 req, bytes server challenge (8) */

	/* worker -> monitor */
	IPC_AUTH_PASSWORD = 100, /* u32 req, str user, str password, str remote */
	IPC_LOGIN_RELEASE,       /* u64 login */
	IPC_SESSION_OPEN,        /* u32 req, u64 login, str shell_id, str resource, str remote */
	IPC_SPAWN,               /* u32 req, u64 login, u64 session, u32 flags, str cwd, u32 argc, str argv..., u32 envc, str env... */
	IPC_SIGNAL,              /* u64 session, u32 pid, u32 signo */
	IPC_SESSION_CLOSE,       /* u64 session */
	IPC_WORKER_READY,        /* (empty): listeners are up */
	IPC_NTLM_VERIFY,         /* u32 req, str user, str domain, bytes challenge, bytes nt response,
	                            bytes encrypted session key, u32 flags, str remote */
	IPC_GSS_ACCEPT,          /* u32 req, bytes token, bytes channel-binding data, u32 strict, str remote */
	IPC_CERT_LOGIN,          /* u32 req, u32 n, bytes certificate (DER, leaf first) x n, str remote */
	IPC_NTLM_CHALLENGE,      /* u32 req: issue a server challenge for IPC_NTLM_VERIFY */
};

/* IPC_CONFIG facts: what only root can see */
#define IPC_FACT_KEYTAB    0x1  /* the Kerberos keytab is readable by the monitor */

/* IPC_SPAWN flags */
#define IPC_SPAWN_MEMLIMIT 0x1  /* apply [Winrs] MaxMemoryPerShellMB as RLIMIT_AS */
#define IPC_SPAWN_RUNSPACE 0x2  /* run the session configuration's Command; argv is ignored */
/* The one environment entry a runspace spawn may carry: the URL the client addressed. */
#define IPC_SPAWN_URL_ENV "WINRMD_CONNECTION_STRING="

enum ipc_auth_result {
	IPC_AUTH_OK = 0,
	IPC_AUTH_BAD_CREDENTIALS = 1,   /* unknown user or wrong password */
	IPC_AUTH_ACCOUNT = 2,           /* expired, locked, not allowed by PAM account */
	IPC_AUTH_FORBIDDEN = 3,         /* authenticated but not in AllowedUsers/Groups */
	IPC_AUTH_ERROR = 4,             /* PAM or system failure */
};

/* A received message; fields are read in order, any misuse sets `bad`. */
struct ipc_msg {
	uint32_t type;
	const unsigned char *data;
	size_t len, off;
	int fds[IPC_MAX_FDS];
	size_t nfds;
	bool bad;
};

uint32_t ipc_u32(struct ipc_msg *m);
int32_t ipc_i32(struct ipc_msg *m);
uint64_t ipc_u64(struct ipc_msg *m);
/* A NUL-free string; returned pointer is valid while the message is. */
const char *ipc_str(struct ipc_msg *m);
const unsigned char *ipc_bytes(struct ipc_msg *m, size_t *n);
/* Take ownership of received descriptor i (or -EBADF and `bad` if absent). */
int ipc_fd(struct ipc_msg *m, size_t i);
/* Must be called after the last field: marks trailing bytes bad. */
bool ipc_end(struct ipc_msg *m);

/*
 * A message being built.  Encoding errors are sticky: a field past
 * IPC_MAX_STRING (-E2BIG), a message past IPC_MAX_MSG or a descriptor past
 * IPC_MAX_FDS (-EMSGSIZE) sets err, later puts are ignored and ipc_send
 * refuses the message.  Sizes come from the network, so this is never fatal.
 */
struct ipc_out {
	struct buf b;
	int fds[IPC_MAX_FDS];
	size_t nfds;
	bool secret;            /* wipe the buffer after sending */
	int err;                /* first encoding error, 0 = none */
};

void ipc_out_init(struct ipc_out *o, uint32_t type);
void ipc_put_u32(struct ipc_out *o, uint32_t v);
void ipc_put_i32(struct ipc_out *o, int32_t v);
void ipc_put_u64(struct ipc_out *o, uint64_t v);
void ipc_put_str(struct ipc_out *o, const char *s);
void ipc_put_bytes(struct ipc_out *o, const void *p, size_t n);
/* Attach a descriptor; ownership passes to the message (closed after send). */
void ipc_put_fd(struct ipc_out *o, int fd);
void ipc_out_free(struct ipc_out *o);
uint32_t ipc_out_type(const struct ipc_out *o);

/*
 * The request tables.  Each side lists, one row per message, what its peer
 * may send: the type, who sends it, in which of the receiver's channel
 * states it is accepted, and the handler.  ipc_dispatch refuses anything
 * else before a handler sees it, and a handler that leaves bytes or
 * descriptors unread has its message refused too.  Monitor: mon_worker.c
 * (the handlers are in mon_login.c and mon_session.c); worker: net.c (its
 * requests and their replies are mm.c's).
 */
enum ipc_sender { IPC_FROM_MONITOR = 1, IPC_FROM_WORKER = 2 };
struct ipc_handler {
	uint32_t type;
	const char *name;
	enum ipc_sender from;
	unsigned states;                /* receiver's states (a bit each) that accept it */
	void (*fn)(struct ipc_msg *m);
};
/* Who may send a type: the numbering says (below 100 the monitor). */
enum ipc_sender ipc_type_sender(uint32_t type);
/* 0, or (with m marked bad and a log line) -EBADMSG for an unknown or
 * malformed message, -EPERM for one the state does not accept, -EPROTO for a
 * row whose sender is wrong. */
int ipc_dispatch(const struct ipc_handler *table, size_t n, unsigned state, struct ipc_msg *m);

struct ipc_chan;
typedef void (*ipc_msg_fn)(struct ipc_chan *ch, struct ipc_msg *m, void *userdata);
typedef void (*ipc_close_fn)(struct ipc_chan *ch, void *userdata);

/* Attach a connected SOCK_SEQPACKET fd to an event loop. */
int ipc_chan_new(sd_event *ev, int fd, ipc_msg_fn on_msg, ipc_close_fn on_close,
    void *userdata, struct ipc_chan **out);
/* Queue a message (consumes o).  Never blocks.  o->err (the message is refused) or a
 * negative errno when the channel failed. */
int ipc_send(struct ipc_chan *ch, struct ipc_out *o);
void ipc_chan_free(struct ipc_chan *ch);
int ipc_chan_fd(struct ipc_chan *ch);

/* Blocking receive of one message, for code without an event loop (tests). */
int ipc_recv_blocking(int fd, unsigned char *buf, size_t cap, struct ipc_msg *m);

#endif
