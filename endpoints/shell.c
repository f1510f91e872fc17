/*
 * shell.c - what every kind of shell shares: the shell and command records,
 * lookup by ShellId and owner, quotas, pipe I/O of commands, the idle and
 * runtime sweep, the monitor's events about sessions and processes, and the
 * shell resource itself (Enumerate, Get) (worker).
 *
 * A shell is a PAM session opened by the monitor; each command is a process
 * the monitor starts as the shell's user, whose pipes arrive here over
 * SCM_RIGHTS.  Output waits in a capped buffer per stream: when it is full
 * the pipe is no longer read, so a fast producer blocks instead of growing
 * our memory.  WinRS (winrs.c) and the PSRP bridge (psrp.c) build on this;
 * what a PSRP shell adds, it plugs in through struct shell_ops.
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

void shell_uuid_upcase(char *s)
{
	for (; *s; s++)
		*s = (char)toupper((unsigned char)*s);
}

void shell_duration(char *out, size_t n, uint64_t ms)
{
	uint64_t s = ms / 1000;

	snprintf(out, n, "P%lluDT%lluH%lluM%lluS", (unsigned long long)(s / 86400),
	    (unsigned long long)(s / 3600 % 24), (unsigned long long)(s / 60 % 60),
	    (unsigned long long)(s % 60));
}

unsigned shell_count_user(uid_t uid)
{
	unsigned n = 0;

	for (struct shell *s = shells; s; s = s->next)
		n += s->uid == uid;
	return n;
}

unsigned shell_count_users(void)
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

struct command *shell_command_find(struct shell *sh, const char *id)
{
	if (!id)
		return NULL;
	for (struct command *c = sh->cmds; c; c = c->next)
		if (str_ieq(c->id, id))
			return c;
	return NULL;
}

void shell_audit(const struct shell *sh, const struct command *cmd, const char *what,
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

void shell_stream_resume(struct stream *st)
{
	if (st->src && st->data.len < CMD_STREAM_MAX)
		sd_event_source_set_enabled(st->src, SD_EVENT_ON);
}

int shell_stream_attach(struct command *cmd, struct stream *st, int fd)
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

void shell_send_reply(struct wsman_call *c)
{
	struct soap_reply r;

	soap_reply_begin(&r, &c->req, ACT_SEND "Response");
	soap_w_start(&r, "rsp:SendResponse");
	wsman_reply(c, &r);
}


static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	(void)s; (void)fd; (void)revents;
	shell_stdin_flush(userdata);
	return 0;
}

void shell_stdin_flush(struct command *cmd)
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
		shell_send_reply(c);
	}
}

static void command_maybe_answer(struct command *cmd)
{
	park_wake(&cmd->recv);
}

/* ---- command lifecycle ------------------------------------------------ */

static void spawn_orphan(struct spawn_ctx *sc)
{
	sc->cmd->spawn = NULL;
	sc->cmd = NULL;
}

void shell_command_free(struct command *cmd)
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
		shell_command_free(sh->cmds);
	if (sh->session)
		mm_session_close(sh->session);
	shell_audit(sh, NULL, why, -1);
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

void shell_write(struct soap_reply *r, const struct shell *sh)
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
	shell_duration(t, sizeof t, now - sh->created_ms);
	soap_w_elem(r, "rsp:ShellRunTime", t);
	shell_duration(t, sizeof t, now - sh->active_ms);
	soap_w_elem(r, "rsp:ShellInactivity", t);
	if (sh->ops)
		soap_w_elem(r, "rsp:CompressionMode", sh->ops->compressed(sh) ? "XpressCompression" : "NoCompression");
	soap_w_elem(r, "rsp:State", sh->disconnected ? "Disconnected" : "Connected");
	soap_w_end(r);
}

void shell_create_reply(struct wsman_call *c, struct shell *sh)
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
	shell_write(&r, sh);
	wsman_reply(c, &r);
}

/*
 * Registers sh as opening and asks the monitor for its PAM session; done()
 * gets the reply and starts with shell_session_opened().
 */
void shell_open_session(struct wsman_call *c, struct shell *sh,
                        void (*done)(void *ctx, struct ipc_msg *reply))
{
	struct shell_open_ctx *oc = xcalloc(1, sizeof *oc);

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
bool shell_session_opened(struct shell_open_ctx *oc, struct ipc_msg *m)
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

/*
 * The new command's id: the client's, as Windows honours it (checked and
 * upper-cased), or a fresh one. False when c was answered with a fault.
 */
bool shell_command_id_choose(struct wsman_call *c, struct shell *sh, const char *cid, char id[37])
{
	if (!cid) {
		uuid_upper(id);
		return true;
	}
	if (!uuid_valid(cid)) {
		wsman_fault(c, SF_COMMAND_ID_INVALID, NULL);
		return false;
	}
	if (shell_command_find(sh, cid)) {
		wsman_fault(c, SF_COMMAND_ID_CONFLICT, NULL);
		return false;
	}
	snprintf(id, 37, "%s", cid);
	shell_uuid_upcase(id);
	return true;
}

bool shell_stream_names_ok(const char *list, const char *allowed)
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
		shell_uuid_upcase(sh->id);
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

	if (shell_count_user(c->uid) >= w->max_shells_per_user || current >= per_user) {
		char lim[24];
		snprintf(lim, sizeof lim, "%llu", limit);
		wsman_fault(c, SF_QUOTA_SHELLS, lim);
		return false;
	}
	if (!shell_count_user(c->uid) && shell_count_users() >= w->max_users) {
		wsman_fault(c, SF_QUOTA_USERS, NULL);
		return false;
	}
	return true;
}

/* ---- Get and Enumerate on .../windows/shell --------------------------- */

void shell_get(struct wsman_call *c, struct shell *sh)
{
	struct soap_reply r;

	soap_reply_begin(&r, &c->req, ACT_GET "Response");
	shell_write(&r, sh);
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
			shell_write(&r, sh);
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
