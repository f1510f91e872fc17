/*
 * shell.c - WinRS remote shells: Create, Command, Send, Receive, Signal,
 * Delete, Get and Enumerate on the cmd shell resource (worker).
 *
 * A shell is a PAM session opened by the monitor; each command is a process
 * the monitor starts as the shell's user, whose pipes arrive here over
 * SCM_RIGHTS.  Output waits in a capped buffer per stream: when it is full
 * the pipe is no longer read, so a fast producer blocks instead of growing
 * our memory.  A Receive with nothing to say is parked (its HTTP connection
 * suspended) until output, exit, or OperationTimeout.
 *
 * Every lookup by ShellId also checks the owner, and a shell of another user
 * answers exactly like a shell that does not exist.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <systemd/sd-event.h>

#include "ipc.h"
#include "log.h"
#include "mm.h"
#include "net.h"
#include "endpoints.h"
#include "shell_int.h"
#include "wlimits.h"
#include "wsman.h"

struct shell *shells;
static sd_event_source *sweep;

/* ---- small helpers ---------------------------------------------------- */

void uuid_upcase(char *s)
{
	for (; *s; s++)
		*s = (char)toupper((unsigned char)*s);
}

void duration(char *out, size_t n, uint64_t ms)
{
	uint64_t s = ms / 1000;

	snprintf(out, n, "P%lluDT%lluH%lluM%lluS", (unsigned long long)(s / 86400),
	    (unsigned long long)(s / 3600 % 24), (unsigned long long)(s / 60 % 60),
	    (unsigned long long)(s % 60));
}

unsigned count_user_shells(uid_t uid)
{
	unsigned n = 0;

	for (struct shell *s = shells; s; s = s->next)
		n += s->uid == uid;
	return n;
}

unsigned count_users(void)
{
	unsigned n = 0;

	for (struct shell *s = shells; s; s = s->next) {
		bool seen = false;
		for (struct shell *t = shells; t != s; t = t->next)
			seen |= t->uid == s->uid;
		n += !seen;
	}
	return n;
}

static unsigned count_running(const struct shell *sh)
{
	unsigned n = 0;

	for (struct command *c = sh->cmds; c; c = c->next)
		n += !c->exited;
	return n;
}

static unsigned count_user_running(uid_t uid)
{
	unsigned n = 0;

	for (struct shell *s = shells; s; s = s->next)
		if (s->uid == uid)
			n += count_running(s);
	return n;
}

/* The shell named by the ShellId selector, if it exists and belongs to the caller. */
struct shell *shell_lookup(struct wsman_call *c, bool fault)
{
	const char *id = soap_selector(&c->req, "ShellId");

	if (!id) {
		if (fault)
			wsman_fault(c, SF_NO_SHELLID_SELECTOR, NULL);
		return NULL;
	}
	for (struct shell *s = shells; s; s = s->next)
		if (str_ieq(s->id, id) && s->uid == c->uid && !strcmp(s->owner, c->user)) {
			s->active_ms = now_ms();
			return s;
		}
	if (fault)
		wsman_fault(c, SF_SHELL_NOT_FOUND, id);
	return NULL;
}

struct command *command_find(struct shell *sh, const char *id)
{
	if (!id)
		return NULL;
	for (struct command *c = sh->cmds; c; c = c->next)
		if (str_ieq(c->id, id))
			return c;
	return NULL;
}

void audit(const struct shell *sh, const struct command *cmd, const char *what,
    long long exit_code)
{
	struct log_rec r = LOG_REC_INIT;

	r.remote = sh->remote;
	r.user = sh->owner;
	r.resource = sh->resource_uri;
	r.shell_id = sh->id;
	r.command = cmd ? cmd->line : NULL;
	r.exit_code = exit_code;
	r.result = what;
	log_record(LOG_INFO, &r, "%s %s%s%s", what, sh->id, cmd ? " command " : "", cmd ? cmd->id : "");
}

/* ---- streams and stdin ------------------------------------------------ */

static void command_maybe_answer(struct command *cmd);

static int on_stream(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct command *cmd = userdata;
	struct stream *st = src == cmd->out.src ? &cmd->out : &cmd->err;
	unsigned char tmp[65536];
	size_t room = CMD_STREAM_MAX - MIN(st->data.len, (size_t)CMD_STREAM_MAX);
	ssize_t n;
	(void)revents;

	n = read(fd, tmp, MIN(sizeof tmp, room));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		st->eof = true;
		st->src = sd_event_source_disable_unref(st->src);
		close_safe(&st->fd);
	} else {
		buf_append(&st->data, tmp, (size_t)n);
		if (st->data.len >= CMD_STREAM_MAX)    /* back-pressure: the child blocks */
			sd_event_source_set_enabled(st->src, SD_EVENT_OFF);
	}
	command_maybe_answer(cmd);
	return 0;
}

static void stream_resume(struct stream *st)
{
	if (st->src && st->data.len < CMD_STREAM_MAX)
		sd_event_source_set_enabled(st->src, SD_EVENT_ON);
}

static int stream_attach(struct command *cmd, struct stream *st, int fd)
{
	int r;

	st->fd = fd;
	buf_init(&st->data, 0);
	fd_nonblock(fd, true);
	r = sd_event_add_io(NET.ev, &st->src, fd, EPOLLIN, on_stream, cmd);
	if (r >= 0)     /* a failure is the caller's to answer */
		sd_event_source_set_description(st->src, st == &cmd->out ? "command-stdout" : "command-stderr");
	return r;
}

static void stream_close(struct stream *st)
{
	st->src = sd_event_source_disable_unref(st->src);
	close_safe(&st->fd);
	buf_free(&st->data);
}

void send_reply(struct wsman_call *c)
{
	struct soap_reply r;

	soap_reply_begin(&r, &c->req, ACT_SEND "Response");
	soap_w_start(&r, "rsp:SendResponse");
	wsman_reply(c, &r);
}

static void stdin_flush(struct command *cmd);

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	(void)s; (void)fd; (void)revents;
	stdin_flush(userdata);
	return 0;
}

static void stdin_flush(struct command *cmd)
{
	while (cmd->in.len && cmd->in_fd >= 0) {
		ssize_t n = write(cmd->in_fd, cmd->in.data, cmd->in.len);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {           /* the reader is gone: drop what is left */
			buf_reset(&cmd->in);
			cmd->in_end = true;
			break;
		}
		buf_consume(&cmd->in, (size_t)n);
	}
	if (cmd->in.len && cmd->in_fd >= 0) {
		if (!cmd->in_src) {
			int r = sd_event_add_io(NET.ev, &cmd->in_src, cmd->in_fd, EPOLLOUT, on_stdin, cmd);
			if (r < 0)      /* the input stays queued; the next Send tries again */
				log_err_errno(r, "command %s: cannot watch its stdin", cmd->id);
			else
				sd_event_source_set_description(cmd->in_src, "command-stdin");
		} else
			sd_event_source_set_enabled(cmd->in_src, SD_EVENT_ON);
	} else if (cmd->in_src) {
		sd_event_source_set_enabled(cmd->in_src, SD_EVENT_OFF);
	}
	if (!cmd->in.len && cmd->in_end) {
		cmd->in_src = sd_event_source_disable_unref(cmd->in_src);
		close_safe(&cmd->in_fd);
	}
	if (cmd->held_send && cmd->in.len < CMD_STDIN_MAX) {
		struct wsman_call *c = cmd->held_send;
		cmd->held_send = NULL;
		c->cancel = NULL;
		send_reply(c);
	}
}

/* ---- Receive ---------------------------------------------------------- */

static bool command_done(const struct command *cmd)
{
	return cmd->exited && (!cmd->want_out || (cmd->out.eof && !cmd->out.data.len)) &&
	    (!cmd->want_err || (cmd->err.eof && !cmd->err.data.len));
}

static bool command_has_news(const struct command *cmd)
{
	if (cmd->want_out && (cmd->out.data.len || (cmd->out.eof && !cmd->out.end_sent)))
		return true;
	if (cmd->want_err && (cmd->err.data.len || (cmd->err.eof && !cmd->err.end_sent)))
		return true;
	return command_done(cmd);
}

static void write_stream(struct soap_reply *r, struct command *cmd, const char *name,
    struct stream *st, size_t budget)
{
	size_t n = MIN(st->data.len, budget);
	char *b64;

	if (n) {
		b64 = b64_encode(st->data.data, n);
		soap_w_start(r, "rsp:Stream");
		soap_w_attr(r, "Name", name);
		soap_w_attr(r, "CommandId", cmd->id);
		soap_w_text(r, b64);
		soap_w_end(r);
		free(b64);
		buf_consume(&st->data, n);
		stream_resume(st);
	}
	if (st->eof && !st->data.len && !st->end_sent) {
		soap_w_start(r, "rsp:Stream");
		soap_w_attr(r, "Name", name);
		soap_w_attr(r, "CommandId", cmd->id);
		soap_w_attr(r, "End", "true");
		soap_w_end(r);
		st->end_sent = true;
	}
}

static int exit_code(const struct command *cmd)
{
	int status = cmd->status;

	if (cmd->forced_exit >= 0)
		return cmd->forced_exit;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

static void receive_answer(struct command *cmd, struct wsman_call *c);

static bool park_has_news(void *owner)
{
	return command_has_news(owner);
}

static void park_answer(void *owner, struct wsman_call *c)
{
	receive_answer(owner, c);
}

static void receive_answer(struct command *cmd, struct wsman_call *c)
{
	struct soap_reply r;
	size_t budget = c->max_envelope > REPLY_OVERHEAD * 2 ?
	    (c->max_envelope - REPLY_OVERHEAD) / 4 * 3 : 1024;
	size_t out_budget, err_budget;

	/* Share the envelope between the streams; stderr is usually small. */
	err_budget = cmd->want_err ? MIN(cmd->err.data.len, budget / 2) : 0;
	out_budget = budget - err_budget;
	soap_reply_begin(&r, &c->req, ACT_RECEIVE "Response");
	soap_w_start(&r, "rsp:ReceiveResponse");
	if (cmd->want_out)
		write_stream(&r, cmd, "stdout", &cmd->out, out_budget);
	if (cmd->want_err)
		write_stream(&r, cmd, "stderr", &cmd->err, err_budget);
	soap_w_start(&r, "rsp:CommandState");
	soap_w_attr(&r, "CommandId", cmd->id);
	if (command_done(cmd)) {
		char code[16];
		snprintf(code, sizeof code, "%d", exit_code(cmd));
		soap_w_attr(&r, "State", STATE_URI "Done");
		soap_w_elem(&r, "rsp:ExitCode", code);
		if (!cmd->done_sent)
			audit(cmd->sh, cmd, "command-exited", exit_code(cmd));
		cmd->done_sent = true;
	} else {
		soap_w_attr(&r, "State", STATE_URI "Running");
	}
	soap_w_end(&r);
	wsman_reply(c, &r);
}

/* ---- parked Receives (WinRS commands, PSRP pools and pipelines) ------- */

void park_init(struct park *p, void *owner, bool (*has_news)(void *), void (*answer)(void *,
    struct wsman_call *))
{
	memset(p, 0, sizeof *p);
	p->owner = owner;
	p->has_news = has_news;
	p->answer = answer;
}

/* Detach the parked call without answering it. */
struct wsman_call *park_release(struct park *p)
{
	struct wsman_call *c = p->call;

	p->timer = sd_event_source_disable_unref(p->timer);
	if (c)
		c->cancel = NULL;
	p->call = NULL;
	return c;
}

void park_fail(struct park *p, enum soap_fault f, const char *arg)
{
	struct wsman_call *c = park_release(p);

	if (c)
		wsman_fault(c, f, arg);
}

void park_wake(struct park *p)
{
	struct wsman_call *c = p->call;

	if (!c || !p->has_news(p->owner))
		return;
	park_release(p);
	if (c->hr && !http_client_alive(c->hr)) {
		/* The client left: keep the output for its next Receive. */
		wsman_fault(c, SF_TIMED_OUT, NULL);
		return;
	}
	p->answer(p->owner, c);
}

static int on_park_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s; (void)usec;
	park_fail(userdata, SF_TIMED_OUT, NULL);
	return 0;
}

static void park_cancel(struct wsman_call *c)
{
	struct park *p = c->data;

	if (p->call == c)
		park_release(p);
	wsman_fault(c, SF_TIMED_OUT, NULL);     /* nobody hears it: frees c */
}

void park_call(struct park *p, struct wsman_call *c)
{
	/* One Receive at a time: an older one ends now, as a timeout. */
	park_fail(p, SF_TIMED_OUT, NULL);
	p->call = c;
	c->data = p;
	c->cancel = park_cancel;
	if (sd_event_add_time_relative(NET.ev, &p->timer, CLOCK_MONOTONIC, c->timeout_ms * 1000ULL,
	    1000, on_park_timeout, p) < 0) {
		log_err("cannot arm a Receive's timeout: answering it now");
		park_fail(p, SF_TIMED_OUT, NULL);
		return;
	}
	sd_event_source_set_description(p->timer, "receive-timeout");
}

/* The sweep: a parked Receive whose client left is dropped now, not at its timeout. */
void park_check_client(struct park *p)
{
	if (p->call && p->call->hr && !http_client_alive(p->call->hr))
		park_fail(p, SF_TIMED_OUT, NULL);
}

static void command_maybe_answer(struct command *cmd)
{
	park_wake(&cmd->recv);
}

static void send_cancel(struct wsman_call *c)
{
	struct command *cmd = c->data;

	if (cmd->held_send == c)
		cmd->held_send = NULL;
	wsman_fault(c, SF_TIMED_OUT, NULL);
}

/* ---- command lifecycle ------------------------------------------------ */

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

static void spawn_orphan(struct spawn_ctx *sc)
{
	sc->cmd->spawn = NULL;
	sc->cmd = NULL;
}

void command_free(struct command *cmd)
{
	struct shell *sh = cmd->sh;

	for (struct command **pp = &sh->cmds; *pp; pp = &(*pp)->next)
		if (*pp == cmd) {
			*pp = cmd->next;
			break;
		}
	if (!cmd->exited && cmd->pid > 0)
		mm_signal(sh->session, cmd->pid, SIGKILL);
	if (cmd->spawn)
		spawn_orphan(cmd->spawn);
	park_fail(&cmd->recv, SF_COMMAND_NOT_FOUND, NULL);
	if (cmd->held_send) {
		struct wsman_call *c = cmd->held_send;
		cmd->held_send = NULL;
		c->cancel = NULL;
		wsman_fault(c, SF_COMMAND_NOT_FOUND, NULL);
	}
	if (cmd->pipe)
		cmd->sh->ops->pipe_free(cmd);
	stream_close(&cmd->out);
	stream_close(&cmd->err);
	cmd->in_src = sd_event_source_disable_unref(cmd->in_src);
	close_safe(&cmd->in_fd);
	buf_free(&cmd->in);
	free(cmd->line);
	free(cmd);
}

/* A command that never ran (as cmd.exe answers an unknown program). */
static struct command *command_synthetic(struct shell *sh, const char *id, const char *line,
    const char *stderr_text, int code)
{
	struct command *cmd = xcalloc(1, sizeof *cmd);

	cmd->sh = sh;
	snprintf(cmd->id, sizeof cmd->id, "%s", id);
	cmd->line = xstrdup(line);
	cmd->in_fd = cmd->out.fd = cmd->err.fd = -1;
	buf_init(&cmd->out.data, 0);
	buf_init(&cmd->err.data, 0);
	buf_appends(&cmd->err.data, stderr_text);
	cmd->out.eof = cmd->err.eof = true;
	cmd->exited = true;
	park_init(&cmd->recv, cmd, park_has_news, park_answer);
	cmd->forced_exit = code;        /* wider than a wait status can carry */
	cmd->next = sh->cmds;
	sh->cmds = cmd;
	return cmd;
}

static void shell_session_killed(uint64_t session)
{
	for (struct shell *s = shells; s; s = s->next)
		if (s->session == session) {
			/* A pending reply still points at an opening shell: it frees it. */
			if (s->opening)
				s->killed = true;
			else
				shell_free(s, "shell-killed");
			return;
		}
}

static void shell_child_exited(uint64_t session, int pid, int status)
{
	for (struct shell *s = shells; s; s = s->next) {
		if (s->session != session)
			continue;
		if (s->ops) {
			s->ops->child_exited(s, pid, status);
			return;
		}
		for (struct command *c = s->cmds; c; c = c->next)
			if (c->pid == pid && !c->exited) {
				c->exited = true;
				c->status = status;
				command_maybe_answer(c);
				return;
			}
	}
}

/* ---- shell lifecycle -------------------------------------------------- */

void shell_free(struct shell *sh, const char *why)
{

	for (struct shell **pp = &shells; *pp; pp = &(*pp)->next)
		if (*pp == sh) {
			*pp = sh->next;
			break;
		}
	if (sh->ops && sh->ops->free(sh))
		sh->session = 0;
	while (sh->cmds)
		command_free(sh->cmds);
	if (sh->session)
		mm_session_close(sh->session);
	audit(sh, NULL, why, -1);
	for (size_t i = 0; i < sh->nenv; i++)
		free(sh->env[i]);
	free(sh->env);
	free(sh->owner);
	free(sh->resource_uri);
	free(sh->name);
	free(sh->cwd);
	free(sh->input_streams);
	free(sh->output_streams);
	free(sh);
}

static int on_sweep(sd_event_source *s, uint64_t usec, void *userdata)
{
	uint64_t now = now_ms();
	(void)userdata;

	for (struct shell *sh = shells, *next; sh; sh = next) {
		bool busy = false;

		next = sh->next;
		for (struct command *c = sh->cmds; c; c = c->next)
			park_check_client(&c->recv);
		if (sh->ops)
			busy = sh->ops->sweep(sh);
		if (sh->opening)
			continue;
		/* A parked Receive is a connected client, not idleness (as on Windows). */
		if (now - sh->active_ms > sh->idle_timeout_ms) {
			for (struct command *c = sh->cmds; c; c = c->next)
				busy |= c->recv.call != NULL;
			if (!busy) {
				shell_free(sh, "shell-idle-timeout");
				continue;
			}
		}
		if (now - sh->created_ms > NET.conf.winrs.max_shell_runtime_ms)
			shell_free(sh, "shell-runtime-exceeded");
	}
	sd_event_source_set_time(s, usec + SHELL_SWEEP_MS * 1000ULL);
	sd_event_source_set_enabled(s, SD_EVENT_ON);
	return 0;
}

static void shell_shutdown(void)
{
	while (shells)
		shell_free(shells, "shell-deleted");
	sweep = sd_event_source_unref(sweep);
}

/* ---- Create ----------------------------------------------------------- */

void write_shell(struct soap_reply *r, const struct shell *sh)
{
	char t[64];
	uint64_t now = now_ms();

	soap_w_start(r, "rsp:Shell");
	soap_w_elem(r, "rsp:ShellId", sh->id);
	if (sh->name)
		soap_w_elem(r, "rsp:Name", sh->name);
	soap_w_elem(r, "rsp:ResourceUri", sh->resource_uri);
	soap_w_elem(r, "rsp:Owner", sh->owner);
	soap_w_elem(r, "rsp:ClientIP", sh->remote);
	snprintf(t, sizeof t, "PT%llu.%03lluS", (unsigned long long)(sh->idle_timeout_ms / 1000),
	    (unsigned long long)(sh->idle_timeout_ms % 1000));
	soap_w_elem(r, "rsp:IdleTimeOut", t);
	soap_w_elem(r, "rsp:InputStreams", sh->input_streams);
	soap_w_elem(r, "rsp:OutputStreams", sh->output_streams);
	duration(t, sizeof t, now - sh->created_ms);
	soap_w_elem(r, "rsp:ShellRunTime", t);
	duration(t, sizeof t, now - sh->active_ms);
	soap_w_elem(r, "rsp:ShellInactivity", t);
	if (sh->ops)
		soap_w_elem(r, "rsp:CompressionMode", sh->ops->compressed(sh) ? "XpressCompression" : "NoCompression");
	soap_w_elem(r, "rsp:State", sh->disconnected ? "Disconnected" : "Connected");
	soap_w_end(r);
}

void create_reply(struct wsman_call *c, struct shell *sh)
{
	struct soap_reply r;
	char addr[512];

	if (c->req.to && str_iprefix(c->req.to, "http"))
		snprintf(addr, sizeof addr, "%s", c->req.to);
	else
		snprintf(addr, sizeof addr, "%s://%s/wsman", c->https ? "https" : "http", c->machine);
	soap_reply_begin(&r, &c->req, ACT_CREATE "Response");
	soap_w_start(&r, "x:ResourceCreated");
	soap_w_elem(&r, "a:Address", addr);
	soap_w_start(&r, "a:ReferenceParameters");
	soap_w_elem(&r, "w:ResourceURI", sh->resource_uri);
	soap_w_start(&r, "w:SelectorSet");
	soap_w_start(&r, "w:Selector");
	soap_w_attr(&r, "Name", "ShellId");
	soap_w_text(&r, sh->id);
	soap_w_end(&r);
	soap_w_end(&r);
	soap_w_end(&r);
	soap_w_end(&r);
	write_shell(&r, sh);
	wsman_reply(c, &r);
}

/*
 * Registers sh as opening and asks the monitor for its PAM session; done()
 * gets the reply and starts with shell_session_opened().
 */
void shell_open_session(struct wsman_call *c, struct shell *sh,
                        void (*done)(void *ctx, struct ipc_msg *reply))
{
	struct open_ctx *oc = xcalloc(1, sizeof *oc);

	sh->opening = true;
	sh->next = shells;
	shells = sh;
	oc->c = c;
	oc->sh = sh;
	c->hr->call = mm_session_open(c->login_id, sh->id, sh->resource_uri, c->remote, done, oc);
	if (!c->hr->call) {
		free(oc);
		sh->opening = false;
		shell_free(sh, "shell-refused");
		wsman_fault(c, SF_INTERNAL_ERROR, "The shell could not be opened. ");
	}
}

/*
 * True with sh->session set when the monitor opened the session. Otherwise the
 * request is answered (or gone), the shell undone and oc freed.
 */
bool shell_session_opened(struct open_ctx *oc, struct ipc_msg *m)
{
	struct shell *sh = oc->sh;
	struct wsman_call *c = oc->c;
	int32_t result;
	uint64_t session;

	if (!m) {                       /* the request went away: undo */
		free(oc);
		sh->opening = false;
		shell_free(sh, "shell-abandoned");
		return false;
	}
	c->hr->call = 0;
	if (!mm_read_session(m, &result, &session)) {   /* net.c drops the monitor link */
		free(oc);
		return false;
	}
	if (result < 0) {
		free(oc);
		sh->opening = false;
		shell_free(sh, "shell-refused");
		if (result == -ENOENT)  /* the session configuration went away on reload */
			wsman_fault(c, SF_RESOURCE_NOT_FOUND, c->req.resource_uri);
		else
			wsman_fault(c, result == -EACCES ? SF_ACCESS_DENIED : SF_INTERNAL_ERROR,
			    "The WS-Management service could not open a login session for the user. ");
		return false;
	}
	sh->session = session;
	return true;
}

static void on_session_result(void *data, struct ipc_msg *m)
{
	struct open_ctx *oc = data;
	struct shell *sh = oc->sh;
	struct wsman_call *c = oc->c;

	if (!shell_session_opened(oc, m))
		return;
	free(oc);
	sh->opening = false;
	audit(sh, NULL, "shell-created", -1);
	create_reply(c, sh);
}

/*
 * The new command's id: the client's, as Windows honours it (checked and
 * upper-cased), or a fresh one. False when c was answered with a fault.
 */
bool command_id_choose(struct wsman_call *c, struct shell *sh, const char *cid, char id[37])
{
	if (!cid) {
		uuid_upper(id);
		return true;
	}
	if (!uuid_valid(cid)) {
		wsman_fault(c, SF_COMMAND_ID_INVALID, NULL);
		return false;
	}
	if (command_find(sh, cid)) {
		wsman_fault(c, SF_COMMAND_ID_CONFLICT, NULL);
		return false;
	}
	snprintf(id, 37, "%s", cid);
	uuid_upcase(id);
	return true;
}

bool stream_names_ok(const char *list, const char *allowed)
{
	char copy[128], *save = NULL;

	if (strlen(list) >= sizeof copy)
		return false;
	snprintf(copy, sizeof copy, "%s", list);
	for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
		if (!conf_list_has(allowed, w))
			return false;
	return true;
}

/*
 * A new shell for the caller: the client's ShellId if it sent a valid,
 * unused one (PowerShell does), else ours.  NULL after a fault.
 */
struct shell *shell_new(struct wsman_call *c, xmlNodePtr body, const char *uri, uint64_t idle_ms)
{
	char buf[SOAP_MAX_ID + 1];
	const char *id = soap_attr(body, "ShellId", buf, sizeof buf);
	struct shell *sh;

	if (id && !uuid_valid(id)) {
		wsman_fault(c, SF_SHELL_ID_INVALID, NULL);
		return NULL;
	}
	for (struct shell *s = shells; id && s; s = s->next)
		if (str_ieq(s->id, id)) {
			wsman_fault(c, SF_SHELL_ID_CONFLICT, NULL);
			return NULL;
		}
	sh = xcalloc(1, sizeof *sh);
	if (id) {
		snprintf(sh->id, sizeof sh->id, "%s", id);
		uuid_upcase(sh->id);
	} else {
		uuid_upper(sh->id);
	}
	sh->owner = xstrdup(c->user);
	sh->uid = c->uid;
	sh->login_id = c->login_id;
	snprintf(sh->remote, sizeof sh->remote, "%s", c->remote);
	sh->resource_uri = xstrdup(uri);
	sh->created_ms = sh->active_ms = now_ms();
	sh->idle_timeout_ms = idle_ms;
	if (soap_attr(body, "Name", buf, sizeof buf))
		sh->name = xstrdup(buf);
	return sh;
}

/* [Winrs] MaxShellsPerUser (or a lower per-configuration limit) and MaxConcurrentUsers. */
bool shell_quota_ok(struct wsman_call *c, unsigned long long per_user, unsigned current)
{
	const struct conf_winrs *w = &NET.conf.winrs;
	unsigned long long limit = MIN(per_user, w->max_shells_per_user);

	if (count_user_shells(c->uid) >= w->max_shells_per_user || current >= per_user) {
		char lim[24];
		snprintf(lim, sizeof lim, "%llu", limit);
		wsman_fault(c, SF_QUOTA_SHELLS, lim);
		return false;
	}
	if (!count_user_shells(c->uid) && count_users() >= w->max_users) {
		wsman_fault(c, SF_QUOTA_USERS, NULL);
		return false;
	}
	return true;
}

/* Environment/Variable elements into sh->env; a fault sentence if they break a limit. */
static const char *shell_read_env(struct shell *sh, xmlNodePtr env)
{
	size_t block = 0;

	for (size_t i = 0; i < sh->nenv; i++)
		block += strlen(sh->env[i]) + 1;
	for (xmlNodePtr v = env->children; v; v = v->next) {
		char nb[WINRS_MAX_ENV_NAME + 2], *val;
		size_t nl, vl;

		if (!soap_is(v, NS_RSP, "Variable"))
			continue;
		if (!soap_attr(v, "Name", nb, sizeof nb) || !(nl = strlen(nb)) || strchr(nb, '='))
			return "The environment variable name is not valid. ";
		if (nl > WINRS_MAX_ENV_NAME)
			return "The environment variable name is too long. ";
		if (sh->nenv >= WINRS_MAX_ENV)
			return "The shell has too many environment variables. ";
		val = soap_text(v);
		vl = strlen(val);
		if (vl > WINRS_MAX_ENV_VALUE) {
			free(val);
			return "The environment variable value is too long. ";
		}
		block += nl + 1 + vl + 1;
		if (block > WINRS_MAX_ENV_BLOCK) {
			free(val);
			return "The environment block of the shell is too large. ";
		}
		sh->env = xrealloc(sh->env, (sh->nenv + 1) * sizeof *sh->env);
		sh->env[sh->nenv++] = xasprintf("%s=%s", nb, val);
		free(val);
	}
	return NULL;
}

static void shell_create(struct wsman_call *c)
{
	xmlNodePtr body = soap_child(c->req.body, NS_RSP, "Shell");
	const struct conf_winrs *w = &NET.conf.winrs;
	struct shell *sh;
	xmlNodePtr n;

	if (!w->allow_remote_shell) {
		wsman_fault(c, SF_SHELLS_NOT_ALLOWED, NULL);
		return;
	}
	if (!body) {
		wsman_fault(c, SF_SCHEMA_VALIDATION,
		    "The Windows Remote Shell cannot process the request because the body has no Shell element. ");
		return;
	}
	if (!shell_quota_ok(c, w->max_shells_per_user, count_user_shells(c->uid)))
		return;
	sh = shell_new(c, body, URI_SHELL_CMD, w->idle_timeout_ms);
	if (!sh)
		return;

	for (n = body->children; n; n = n->next) {
		const char *why = NULL;
		char *t;

		if (n->type != XML_ELEMENT_NODE || !soap_is(n, NS_RSP, (const char *)n->name))
			continue;
		t = soap_text(n);
		if (!strcmp((const char *)n->name, "InputStreams")) {
			free(sh->input_streams);
			sh->input_streams = t;
			t = NULL;
		} else if (!strcmp((const char *)n->name, "OutputStreams")) {
			free(sh->output_streams);
			sh->output_streams = t;
			t = NULL;
		} else if (!strcmp((const char *)n->name, "WorkingDirectory")) {
			if (strlen(t) > WINRS_MAX_CWD) {
				why = "The working directory is too long. ";
			} else {
				free(sh->cwd);
				sh->cwd = t;
				t = NULL;
			}
		} else if (!strcmp((const char *)n->name, "IdleTimeOut")) {
			long long ms = soap_duration_ms(t);
			unsigned long long secs;
			/* pywinrm 0.3 passes a bare number of seconds through. */
			if (ms < 0 && parse_uint(t, 0, 100000000ULL, &secs) == 0)
				ms = (long long)secs * 1000;
			if (ms >= 0)
				sh->idle_timeout_ms = MIN((uint64_t)ms, w->idle_timeout_ms);
		} else if (!strcmp((const char *)n->name, "Environment")) {
			why = shell_read_env(sh, n);
		}
		free(t);
		if (why) {
			shell_free(sh, "shell-refused");
			wsman_fault(c, SF_SCHEMA_VALIDATION, why);
			return;
		}
	}
	if (!sh->input_streams)
		sh->input_streams = xstrdup("stdin");
	if (!sh->output_streams)
		sh->output_streams = xstrdup("stdout stderr");
	if (!stream_names_ok(sh->input_streams, "stdin") ||
	    !stream_names_ok(sh->output_streams, "stdout stderr")) {
		char *bad = xstrdup(sh->output_streams);
		shell_free(sh, "shell-refused");
		wsman_fault(c, SF_INVALID_STREAM, bad);
		free(bad);
		return;
	}
	shell_open_session(c, sh, on_session_result);
}

/* ---- Command ---------------------------------------------------------- */

/* An IPC_SPAWN: cwd, argv (the line, or its words, plus a few fixed strings) and env. */
_Static_assert(64 + WINRS_MAX_CWD + 2 * WINRS_MAX_COMMAND_LINE + WINRS_MAX_ENV_BLOCK +
    5 * (SPAWN_MAX_ARGS + 4 + WINRS_MAX_ENV) < IPC_MAX_MSG, "an IPC_SPAWN must fit IPC_MAX_MSG");
_Static_assert(WINRS_MAX_ENV <= SPAWN_MAX_ENV, "the monitor takes every variable");

/* Split a Windows-style command line into words (quotes group, as cmd.exe). */
static size_t split_words(const char *line, char **words, size_t max)
{
	size_t n = 0;
	const char *p = line;

	while (*p && n < max) {
		struct buf w;
		bool q = false;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		buf_init(&w, 0);
		for (; *p && (q || (*p != ' ' && *p != '\t')); p++) {
			if (*p == '"')
				q = !q;
			else
				buf_append(&w, p, 1);
		}
		words[n++] = xstrdup(buf_str(&w));
		buf_free(&w);
	}
	return n;
}

static bool is_powershell(const char *word)
{
	const char *base = strrchr(word, '\\');

	base = base ? base + 1 : word;
	return str_ieq(base, "powershell") || str_ieq(base, "powershell.exe") ||
	    str_ieq(base, "pwsh") || str_ieq(base, "pwsh.exe");
}

static void command_reply(struct wsman_call *c, const struct command *cmd)
{
	struct soap_reply r;

	soap_reply_begin(&r, &c->req, ACT_COMMAND "Response");
	soap_w_start(&r, "rsp:CommandResponse");
	soap_w_elem(&r, "rsp:CommandId", cmd->id);
	wsman_reply(c, &r);
}

/* The command was freed while the monitor spawned it. */
static void spawn_orphan_result(struct spawn_ctx *sc, struct ipc_msg *m)
{
	struct wsman_call *c = sc->c;
	int32_t result;
	uint32_t pid;
	int fds[3] = { -1, -1, -1 };

	if (!m) {               /* the client went away too */
		free(sc);
		return;
	}
	c->hr->call = 0;
	if (!mm_read_spawn(m, &result, &pid, fds)) {
		free(sc);
		return;
	}
	for (int i = 0; i < 3; i++)
		close_safe(&fds[i]);
	if (result == 0 && pid > 0)
		mm_signal(sc->session, (pid_t)pid, SIGKILL);
	free(sc);
	wsman_fault(c, SF_COMMAND_NOT_FOUND, NULL);
}

static void on_spawn_result(void *data, struct ipc_msg *m)
{
	struct spawn_ctx *sc = data;
	struct command *cmd = sc->cmd;
	struct wsman_call *c = sc->c;
	int32_t result;
	uint32_t pid;
	int fds[3];

	if (!cmd) {
		spawn_orphan_result(sc, m);
		return;
	}
	free(sc);
	cmd->spawn = NULL;
	cmd->spawning = false;
	if (!m) {
		command_free(cmd);
		return;
	}
	c->hr->call = 0;
	if (!mm_read_spawn(m, &result, &pid, fds))
		return;
	if (result < 0) {
		command_free(cmd);
		if (result == -EUSERS) {
			char why[160];
			snprintf(why, sizeof why, "The shell has reached its MaxProcessesPerShell quota of "
			    "%llu processes. ", (unsigned long long)NET.conf.winrs.max_procs_per_shell);
			wsman_fault(c, SF_PROCESS_FAILED, why);
		} else {
			wsman_fault(c, SF_PROCESS_FAILED, "The command could not be started. ");
		}
		return;
	}
	cmd->pid = (int)pid;
	cmd->in_fd = fds[0];
	fd_nonblock(cmd->in_fd, true);
	if (stream_attach(cmd, &cmd->out, fds[1]) < 0 || stream_attach(cmd, &cmd->err, fds[2]) < 0) {
		command_free(cmd);
		wsman_fault(c, SF_INTERNAL_ERROR, "The command output could not be attached. ");
		return;
	}
	audit(cmd->sh, cmd, "command-started", -1);
	command_reply(c, cmd);
}

static void shell_command(struct wsman_call *c, struct shell *sh)
{
	xmlNodePtr cl = soap_child(c->req.body, NS_RSP, "CommandLine");
	struct command *cmd;
	struct spawn_ctx *sc;
	struct buf line;
	char idbuf[SOAP_MAX_ID + 1], id[37], *words[SPAWN_MAX_ARGS];
	const char *cid;
	char *argv[260], pwsh_path[64];
	size_t argc = 0, nw = 0;
	bool skip_shell;
	uint32_t flags = IPC_SPAWN_MEMLIMIT;
	char *t;

	if (!cl) {
		wsman_fault(c, SF_SCHEMA_VALIDATION,
		    "The Windows Remote Shell cannot process the request because the body has no CommandLine element. ");
		return;
	}
	cid = soap_attr(cl, "CommandId", idbuf, sizeof idbuf);
	if (!command_id_choose(c, sh, cid, id))
		return;
	if (count_user_running(c->uid) >= NET.conf.service.max_ops_per_user) {
		char lim[24];
		snprintf(lim, sizeof lim, "%llu", NET.conf.service.max_ops_per_user);
		wsman_fault(c, SF_QUOTA_OPERATIONS, lim);
		return;
	}

	/* Command then Arguments, joined as cmd.exe would see them. */
	buf_init(&line, WINRS_MAX_COMMAND_LINE);
	t = soap_text(soap_child(cl, NS_RSP, "Command"));
	{
		size_t n = strlen(t);
		int r;
		/* Ruby's client wraps the whole command in double quotes. */
		if (n >= 2 && t[0] == '"' && t[n - 1] == '"' && !memchr(t + 1, '"', n - 2)) {
			t[n - 1] = '\0';
			r = buf_appends(&line, t + 1);
		} else {
			r = buf_appends(&line, t);
		}
		free(t);
		if (r < 0) {
			buf_free(&line);
			wsman_fault(c, SF_SCHEMA_VALIDATION, "The command line is too long. ");
			return;
		}
	}
	for (xmlNodePtr a = soap_child(cl, NS_RSP, "Arguments"); a; a = soap_next(a, NS_RSP, "Arguments")) {
		t = soap_text(a);
		if (*t && (buf_appends(&line, " ") < 0 || buf_appends(&line, t) < 0)) {
			free(t);
			buf_free(&line);
			wsman_fault(c, SF_SCHEMA_VALIDATION, "The command line is too long. ");
			return;
		}
		free(t);
	}
	if (!line.len) {
		buf_free(&line);
		wsman_fault(c, SF_SCHEMA_VALIDATION,
		    "The Windows Remote Shell cannot process the request because the command is empty. ");
		return;
	}

	nw = split_words(buf_str(&line), words, ARRAY_SIZE(words));
	if (nw && is_powershell(words[0])) {
		const char *pwsh = conf_pwsh_path();

		if (!pwsh) {
			/* What cmd.exe says for a program it cannot find. */
			cmd = command_synthetic(sh, id, buf_str(&line),
			    "'powershell' is not recognized as an internal or external command,\r\n"
			    "operable program or batch file.\r\n"
			    "winrmd: PowerShell (pwsh) is not installed on this host.\r\n", 9009);
			for (size_t i = 0; i < nw; i++)
				free(words[i]);
			buf_free(&line);
			audit(sh, cmd, "command-started", -1);
			command_reply(c, cmd);
			return;
		}
		snprintf(pwsh_path, sizeof pwsh_path, "%s", pwsh);
		argv[argc++] = pwsh_path;
		for (size_t i = 1; i < nw && argc < ARRAY_SIZE(argv) - 1; i++)
			argv[argc++] = words[i];
		flags = 0;      /* .NET reserves far more address space than it uses */
	} else {
		skip_shell = soap_option_bool(&c->req, "WINRS_SKIP_CMD_SHELL", false);
		argv[argc++] = "/bin/sh";
		argv[argc++] = "-c";
		if (skip_shell && nw) {
			/* Run the program itself: no shell parses the arguments. */
			argv[argc++] = "exec \"$@\"";
			argv[argc++] = "sh";
			for (size_t i = 0; i < nw && argc < ARRAY_SIZE(argv) - 1; i++)
				argv[argc++] = words[i];
		} else {
			argv[argc++] = buf_str(&line);
		}
	}
	argv[argc] = NULL;

	cmd = xcalloc(1, sizeof *cmd);
	cmd->sh = sh;
	snprintf(cmd->id, sizeof cmd->id, "%s", id);
	cmd->line = xstrdup(buf_str(&line));
	cmd->in_fd = cmd->out.fd = cmd->err.fd = -1;
	cmd->forced_exit = -1;
	buf_init(&cmd->in, 0);
	cmd->spawning = true;
	park_init(&cmd->recv, cmd, park_has_news, park_answer);
	cmd->next = sh->cmds;
	sh->cmds = cmd;

	sc = xcalloc(1, sizeof *sc);
	sc->c = c;
	sc->cmd = cmd;
	sc->session = sh->session;
	cmd->spawn = sc;
	c->hr->call = mm_spawn(c->login_id, sh->session, flags, sh->cwd, argc, argv, sh->nenv, sh->env,
	    on_spawn_result, sc);
	for (size_t i = 0; i < nw; i++)
		free(words[i]);
	buf_free(&line);
	if (!c->hr->call) {
		/* The bounds above keep a spawn inside IPC_MAX_MSG; this is the backstop. */
		cmd->spawn = NULL;
		free(sc);
		command_free(cmd);
		wsman_fault(c, SF_PROCESS_FAILED, "The command could not be started. ");
	}
}

/* ---- Send, Receive, Signal, Delete ------------------------------------ */

static void shell_send(struct wsman_call *c, struct shell *sh)
{
	xmlNodePtr send = soap_child(c->req.body, NS_RSP, "Send");
	struct command *last = NULL;

	if (!send) {
		wsman_fault(c, SF_SCHEMA_VALIDATION,
		    "The Windows Remote Shell cannot process the request because the body has no Send element. ");
		return;
	}
	for (xmlNodePtr s = soap_child(send, NS_RSP, "Stream"); s; s = soap_next(s, NS_RSP, "Stream")) {
		char nb[64], cb[SOAP_MAX_ID + 1], eb[16];
		const char *name = soap_attr(s, "Name", nb, sizeof nb);
		const char *cid = soap_attr(s, "CommandId", cb, sizeof cb);
		const char *end = soap_attr(s, "End", eb, sizeof eb);
		struct command *cmd = command_find(sh, cid);
		xmlChar *text;
		long n;
		size_t len;
		unsigned char *data;

		if (!cmd) {
			wsman_fault(c, SF_COMMAND_NOT_FOUND, NULL);
			return;
		}
		if (!name || strcmp(name, "stdin")) {
			wsman_fault(c, SF_INVALID_STREAM, name ? name : "(none)");
			return;
		}
		text = xmlNodeGetContent(s);
		len = text ? strlen((char *)text) : 0;
		data = xmalloc(b64_decoded_max(len) + 1);
		n = b64_decode(text ? (char *)text : "", len, data, b64_decoded_max(len));
		xmlFree(text);
		if (n < 0) {
			free(data);
			wsman_fault(c, SF_SCHEMA_VALIDATION,
			    "The Windows Remote Shell cannot process the request because the stream data is not valid base64. ");
			return;
		}
		if (!cmd->in_end && cmd->in_fd >= 0)
			buf_append(&cmd->in, data, (size_t)n);
		free(data);
		if (end && (str_ieq(end, "true") || !strcmp(end, "1")))
			cmd->in_end = true;
		stdin_flush(cmd);
		last = cmd;
	}
	if (last && last->in.len >= CMD_STDIN_MAX && !last->held_send) {
		/* Hold the reply until the process has read enough: flow control. */
		last->held_send = c;
		c->data = last;
		c->cancel = send_cancel;
		return;
	}
	send_reply(c);
}

static void shell_receive(struct wsman_call *c, struct shell *sh)
{
	xmlNodePtr rcv = soap_child(c->req.body, NS_RSP, "Receive");
	xmlNodePtr ds = rcv ? soap_child(rcv, NS_RSP, "DesiredStream") : NULL;
	char cb[SOAP_MAX_ID + 1];
	const char *cid = soap_attr(ds, "CommandId", cb, sizeof cb);
	struct command *cmd = command_find(sh, cid);
	char *want;

	if (!ds) {
		wsman_fault(c, SF_SCHEMA_VALIDATION,
		    "The Windows Remote Shell cannot process the request because the body has no DesiredStream element. ");
		return;
	}
	if (!cmd || cmd->spawning) {
		wsman_fault(c, SF_COMMAND_NOT_FOUND, NULL);
		return;
	}
	want = soap_text(ds);
	if (!stream_names_ok(want, sh->output_streams) || !*want) {
		wsman_fault(c, SF_INVALID_STREAM, want);
		free(want);
		return;
	}
	cmd->want_out = conf_list_has(want, "stdout");
	cmd->want_err = conf_list_has(want, "stderr");
	free(want);
	if (command_has_news(cmd)) {
		park_fail(&cmd->recv, SF_TIMED_OUT, NULL);
		receive_answer(cmd, c);
		return;
	}
	park_call(&cmd->recv, c);
}

static void shell_signal(struct wsman_call *c, struct shell *sh)
{
	xmlNodePtr sig = soap_child(c->req.body, NS_RSP, "Signal");
	char cb[SOAP_MAX_ID + 1];
	const char *cid = soap_attr(sig, "CommandId", cb, sizeof cb);
	struct command *cmd;
	struct soap_reply r;
	char *code;

	if (!sig) {
		wsman_fault(c, SF_SCHEMA_VALIDATION,
		    "The Windows Remote Shell cannot process the request because the body has no Signal element. ");
		return;
	}
	code = soap_text(soap_child(sig, NS_RSP, "Code"));
	cmd = command_find(sh, cid);
	if (cid && !cmd) {
		free(code);
		wsman_fault(c, SF_COMMAND_NOT_FOUND, NULL);
		return;
	}
	if (cmd) {
		/* Codes are URIs; compare the last segment, in any case (pypsrp sends Terminate). */
		const char *what = strrchr(code, '/') ? strrchr(code, '/') + 1 : code;
		if (str_ieq(what, "ctrl_c") || str_ieq(what, "crtl_c")) {
			if (!cmd->exited && cmd->pid > 0)
				mm_signal(sh->session, cmd->pid, SIGINT);
		} else if (str_ieq(what, "ctrl_break")) {
			if (!cmd->exited && cmd->pid > 0)
				mm_signal(sh->session, cmd->pid, SIGQUIT);
		} else if (str_ieq(what, "terminate")) {
			command_free(cmd);      /* kills it if still running; the monitor reaps */
		} else {
			free(code);
			wsman_fault(c, SF_INVALID_OPTIONS, "The signal code is not supported. ");
			return;
		}
	}
	free(code);
	soap_reply_begin(&r, &c->req, ACT_SIGNAL "Response");
	soap_w_start(&r, "rsp:SignalResponse");
	wsman_reply(c, &r);
}

static void shell_delete(struct wsman_call *c, struct shell *sh)
{
	struct soap_reply r;

	shell_free(sh, "shell-deleted");
	soap_reply_begin(&r, &c->req, ACT_DELETE "Response");
	wsman_reply(c, &r);
}

/* ---- Get and Enumerate on .../windows/shell --------------------------- */

static void shell_get(struct wsman_call *c, struct shell *sh)
{
	struct soap_reply r;

	soap_reply_begin(&r, &c->req, ACT_GET "Response");
	write_shell(&r, sh);
	wsman_reply(c, &r);
}

static void shell_enumerate(struct wsman_call *c, bool commands)
{
	xmlNodePtr en = soap_child(c->req.body, NS_WSEN, "Enumerate");
	struct shell *only = NULL;
	struct soap_reply r;

	if (!en) {
		wsman_fault(c, SF_SCHEMA_VALIDATION, "The body has no Enumerate element. ");
		return;
	}
	if (commands) {
		/* pypsrp filters commands by ShellId with a selector filter. */
		xmlNodePtr f = soap_child(en, NS_WSMAN, "Filter");
		xmlNodePtr ss = f ? soap_child(f, NS_WSMAN, "SelectorSet") : NULL;
		for (xmlNodePtr s = ss ? soap_child(ss, NS_WSMAN, "Selector") : NULL; s;
		     s = soap_next(s, NS_WSMAN, "Selector")) {
			char nb[32];
			if (soap_attr(s, "Name", nb, sizeof nb) && str_ieq(nb, "ShellId")) {
				char *id = soap_text(s);
				for (struct shell *sh = shells; sh; sh = sh->next)
					if (str_ieq(sh->id, id) && sh->uid == c->uid)
						only = sh;
				free(id);
			}
		}
	}
	soap_reply_begin(&r, &c->req, ACT_ENUMERATE "Response");
	soap_w_start(&r, "n:EnumerateResponse");
	soap_w_elem(&r, "n:EnumerationContext", "");
	soap_w_start(&r, "w:Items");
	for (struct shell *sh = shells; sh; sh = sh->next) {
		if (sh->uid != c->uid || strcmp(sh->owner, c->user) || sh->opening)
			continue;
		if (!commands) {
			write_shell(&r, sh);
			continue;
		}
		if (sh != only)
			continue;
		for (struct command *cmd = sh->cmds; cmd; cmd = cmd->next) {
			soap_w_start(&r, "rsp:Command");
			soap_w_elem(&r, "rsp:CommandId", cmd->id);
			soap_w_end(&r);
		}
	}
	soap_w_end(&r);
	soap_w_start(&r, "w:EndOfSequence");
	soap_w_end(&r);
	soap_w_end(&r);
	wsman_reply(c, &r);
}

/* ---- the endpoints ----------------------------------------------------- */

/* The shell resource itself: Enumerate and Get of any kind of shell. */
static bool shells_handles(const char *uri)
{
	return str_ieq(uri, URI_SHELL) || str_ieq(uri, URI_SHELL "/Command");
}

static void shells_enumerate(struct wsman_call *c)
{
	shell_enumerate(c, str_ieq(c->req.resource_uri, URI_SHELL "/Command"));
}

static void shells_get(struct wsman_call *c)
{
	struct shell *sh = shell_lookup(c, true);

	if (sh)
		shell_get(c, sh);
}

static const struct wsman_action shells_actions[] = {
	{ ACT_ENUMERATE, shells_enumerate },
	{ ACT_GET, shells_get },
	{ NULL, NULL },
};

static const struct wsman_endpoint shells_endpoint = {
	.name = "shells",
	.handles = shells_handles,
	.actions = shells_actions,
};

/* The WinRS cmd shell. */
static bool winrs_handles(const char *uri)
{
	return str_ieq(uri, URI_SHELL_CMD);
}

/* The shell an action names; a PSRP shell is not one to WinRS. */
static struct shell *winrs_target(struct wsman_call *c)
{
	struct shell *sh = shell_lookup(c, true);

	if (sh && (sh->opening || sh->psrp)) {
		wsman_fault(c, SF_SHELL_NOT_FOUND, sh->id);
		return NULL;
	}
	return sh;
}

static void winrs_command(struct wsman_call *c)
{
	struct shell *sh = winrs_target(c);

	if (sh)
		shell_command(c, sh);
}

static void winrs_send(struct wsman_call *c)
{
	struct shell *sh = winrs_target(c);

	if (sh)
		shell_send(c, sh);
}

static void winrs_receive(struct wsman_call *c)
{
	struct shell *sh = winrs_target(c);

	if (sh)
		shell_receive(c, sh);
}

static void winrs_signal(struct wsman_call *c)
{
	struct shell *sh = winrs_target(c);

	if (sh)
		shell_signal(c, sh);
}

static void winrs_delete(struct wsman_call *c)
{
	struct shell *sh = winrs_target(c);

	if (sh)
		shell_delete(c, sh);
}

static void winrs_get(struct wsman_call *c)
{
	struct shell *sh = winrs_target(c);

	if (sh)
		shell_get(c, sh);
}

static const struct wsman_action winrs_actions[] = {
	{ ACT_CREATE, shell_create },
	{ ACT_COMMAND, winrs_command },
	{ ACT_SEND, winrs_send },
	{ ACT_RECEIVE, winrs_receive },
	{ ACT_SIGNAL, winrs_signal },
	{ ACT_DELETE, winrs_delete },
	{ ACT_GET, winrs_get },
	{ NULL, NULL },
};

static const struct wsman_endpoint winrs_endpoint = {
	.name = "winrs",
	.handles = winrs_handles,
	.actions = winrs_actions,
};

static const struct net_events shell_events = {
	.session_killed = shell_session_killed,
	.child_exited = shell_child_exited,
	.shutdown = shell_shutdown,
};

void shell_register(void)
{
	if (sd_event_add_time_relative(NET.ev, &sweep, CLOCK_MONOTONIC, SHELL_SWEEP_MS * 1000ULL, 0,
	    on_sweep, NULL) < 0)
		fatal("cannot arm the shell sweep");
	sd_event_source_set_description(sweep, "shell-sweep");
	net_subscribe(&shell_events);
	wsman_register(&shells_endpoint);
}

void winrs_register(void)
{
	wsman_register(&winrs_endpoint);
}
