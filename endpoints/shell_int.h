/*
 * shell_int.h - what the WinRS shell code (shell.c) and the PSRP bridge
 * (psrp.c) share: shells, their commands, parked Receives (worker only).
 */
#ifndef WINRMD_SHELL_INT_H
#define WINRMD_SHELL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "soap.h"
#include "util.h"

#define STATE_URI "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/"

struct ipc_msg;
struct wsman_call;
struct psrp;

/* A Receive waiting for news: answered by `answer` or by a timeout fault. */
struct park {
	struct wsman_call *call;
	sd_event_source *timer;
	void *owner;
	bool (*has_news)(void *owner);
	void (*answer)(void *owner, struct wsman_call *c);
};

void park_init(struct park *p, void *owner, bool (*has_news)(void *),
    void (*answer)(void *, struct wsman_call *));
void park_call(struct park *p, struct wsman_call *c);
void park_wake(struct park *p);
void park_fail(struct park *p, enum soap_fault f, const char *arg);
struct wsman_call *park_release(struct park *p);
void park_check_client(struct park *p);

struct shell;
struct command;

/*
 * What a kind of shell adds to the shared machinery: the PSRP bridge sets
 * these on its shells, so that this code never calls up into psrp.c.
 */
struct shell_ops {
	bool (*free)(struct shell *sh);         /* true: it closes sh->session itself, later */
	void (*pipe_free)(struct command *cmd);
	void (*child_exited)(struct shell *sh, int pid, int status);
	/* Drops Receives whose client went away; true while one still waits
	 * (a connected client: the shell is not idle). */
	bool (*sweep)(struct shell *sh);
	bool (*compressed)(const struct shell *sh);
};

struct stream {
	struct buf data;
	int fd;
	sd_event_source *src;
	bool eof;               /* the pipe reached EOF */
	bool end_sent;          /* End="true" went to the client */
	size_t inflight;        /* bytes in a reply not yet known to be delivered */
};

struct command {
	struct command *next;
	struct shell *sh;
	char id[37];
	char *line;             /* for the shell_audit log */
	int pid;
	bool spawning, exited, done_sent, terminated;
	struct spawn_ctx *spawn;        /* the IPC_SPAWN in flight, while spawning */
	int status;
	int forced_exit;        /* exit code of a command that never ran, or -1 */
	struct stream out, err;
	/* stdin */
	int in_fd;
	sd_event_source *in_src;
	struct buf in;
	bool in_end;
	struct wsman_call *held_send;   /* waits for stdin to drain */
	struct park recv;
	bool want_out, want_err;
	struct psrp_pipe *pipe;         /* PSRP: the pipeline this command is */
};

struct spawn_ctx;

struct shell {
	struct shell *next;
	char id[37];
	char *owner;
	uid_t uid;
	uint64_t login_id;      /* the login that created it (for spawn checks: any login of the owner works) */
	char remote[64];
	char *resource_uri;
	char *name;
	uint64_t session;       /* the monitor's PAM session */
	char *cwd;
	char **env;
	size_t nenv;
	uint64_t created_ms, active_ms, idle_timeout_ms;
	char *input_streams, *output_streams;
	struct command *cmds;
	bool opening;
	bool killed;                    /* an administrator ended it while it was opening */
	struct psrp *psrp;              /* PSRP: the runspace process behind this shell */
	const struct shell_ops *ops;    /* set by the kind of shell that needs them */
	bool disconnected;
};

extern struct shell *shells;

struct shell *shell_new(struct wsman_call *c, xmlNodePtr body, const char *uri, uint64_t idle_ms);
bool shell_quota_ok(struct wsman_call *c, unsigned long long per_user, unsigned current);
void shell_uuid_upcase(char *s);
void shell_duration(char *out, size_t n, uint64_t ms);
unsigned shell_count_user(uid_t uid);
unsigned shell_count_users(void);
struct shell *shell_lookup(struct wsman_call *c, bool fault);
struct command *shell_command_find(struct shell *sh, const char *id);
/* Ends the command (kills a running process) and frees its record. */
void shell_command_free(struct command *cmd);
void shell_audit(const struct shell *sh, const struct command *cmd, const char *what, long long exit_code);
void shell_free(struct shell *sh, const char *why);
void shell_write(struct soap_reply *r, const struct shell *sh);
void shell_create_reply(struct wsman_call *c, struct shell *sh);

/* The first step of every Create: the monitor opens a PAM session for the shell. */
struct shell_open_ctx {
	struct wsman_call *c;
	struct shell *sh;
};
void shell_open_session(struct wsman_call *c, struct shell *sh,
                        void (*done)(void *ctx, struct ipc_msg *reply));
bool shell_session_opened(struct shell_open_ctx *oc, struct ipc_msg *m);
bool shell_stream_names_ok(const char *list, const char *allowed);
bool shell_command_id_choose(struct wsman_call *c, struct shell *sh, const char *cid, char id[37]);
void shell_send_reply(struct wsman_call *c);
/*
 * A spawn the monitor has not answered yet outlives its command (Signal
 * terminate, Delete, the idle sweep): the reply must find no freed memory,
 * and the process it reports, if any, is killed.
 */
struct spawn_ctx {
	struct wsman_call *c;
	struct command *cmd;            /* NULL once the command is gone */
	uint64_t session;
};

/* Get of one shell, on the shell resource or its own. */
void shell_get(struct wsman_call *c, struct shell *sh);
/* Pipe I/O of a command: watch an output pipe, read it again once drained, write stdin. */
int shell_stream_attach(struct command *cmd, struct stream *st, int fd);
void shell_stream_resume(struct stream *st);
void shell_stdin_flush(struct command *cmd);

#endif
