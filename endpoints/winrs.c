/*
 * winrs.c - WinRS remote shells on the cmd shell resource: Create, Command,
 * Send, Receive, Signal, Delete and Get (worker).
 *
 * Built on shell.c's records and pipes: a command is a process the monitor
 * starts as the shell's user.  A Receive with nothing to say is parked
 * (park.c) until output, exit, or OperationTimeout.
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

#include "endpoints.h"
#include "ipc.h"
#include "log.h"
#include "mm.h"
#include "net_state.h"
#include "shell_int.h"
#include "wlimits.h"
#include "wsman.h"

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
		shell_stream_resume(st);
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
			shell_audit(cmd->sh, cmd, "command-exited", exit_code(cmd));
		cmd->done_sent = true;
	} else {
		soap_w_attr(&r, "State", STATE_URI "Running");
	}
	soap_w_end(&r);
	wsman_reply(c, &r);
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

static void on_session_result(void *data, struct ipc_msg *m)
{
	struct shell_open_ctx *oc = data;
	struct shell *sh = oc->sh;
	struct wsman_call *c = oc->c;

	if (!shell_session_opened(oc, m))
		return;
	free(oc);
	sh->opening = false;
	shell_audit(sh, NULL, "shell-created", -1);
	shell_create_reply(c, sh);
}

static void send_cancel(struct wsman_call *c)
{
	struct command *cmd = c->data;

	if (cmd->held_send == c)
		cmd->held_send = NULL;
	wsman_fault(c, SF_TIMED_OUT, NULL);
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
	if (!shell_quota_ok(c, w->max_shells_per_user, shell_count_user(c->uid)))
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
	if (!shell_stream_names_ok(sh->input_streams, "stdin") ||
	    !shell_stream_names_ok(sh->output_streams, "stdout stderr")) {
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
		shell_command_free(cmd);
		return;
	}
	c->hr->call = 0;
	if (!mm_read_spawn(m, &result, &pid, fds))
		return;
	if (result < 0) {
		shell_command_free(cmd);
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
	if (shell_stream_attach(cmd, &cmd->out, fds[1]) < 0 || shell_stream_attach(cmd, &cmd->err, fds[2]) < 0) {
		shell_command_free(cmd);
		wsman_fault(c, SF_INTERNAL_ERROR, "The command output could not be attached. ");
		return;
	}
	shell_audit(cmd->sh, cmd, "command-started", -1);
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
	if (!shell_command_id_choose(c, sh, cid, id))
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
			shell_audit(sh, cmd, "command-started", -1);
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
		shell_command_free(cmd);
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
		struct command *cmd = shell_command_find(sh, cid);
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
		shell_stdin_flush(cmd);
		last = cmd;
	}
	if (last && last->in.len >= CMD_STDIN_MAX && !last->held_send) {
		/* Hold the reply until the process has read enough: flow control. */
		last->held_send = c;
		c->data = last;
		c->cancel = send_cancel;
		return;
	}
	shell_send_reply(c);
}

static void shell_receive(struct wsman_call *c, struct shell *sh)
{
	xmlNodePtr rcv = soap_child(c->req.body, NS_RSP, "Receive");
	xmlNodePtr ds = rcv ? soap_child(rcv, NS_RSP, "DesiredStream") : NULL;
	char cb[SOAP_MAX_ID + 1];
	const char *cid = soap_attr(ds, "CommandId", cb, sizeof cb);
	struct command *cmd = shell_command_find(sh, cid);
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
	if (!shell_stream_names_ok(want, sh->output_streams) || !*want) {
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
	_cleanup_free_ char *code = NULL;

	if (!sig) {
		wsman_fault(c, SF_SCHEMA_VALIDATION,
		    "The Windows Remote Shell cannot process the request because the body has no Signal element. ");
		return;
	}
	code = soap_text(soap_child(sig, NS_RSP, "Code"));
	cmd = shell_command_find(sh, cid);
	if (cid && !cmd) {
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
			shell_command_free(cmd);      /* kills it if still running; the monitor reaps */
		} else {
			wsman_fault(c, SF_INVALID_OPTIONS, "The signal code is not supported. ");
			return;
		}
	}
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

/* An action on one WinRS shell: found and checked by winrs_target, then fn. */
#define ON_SHELL(name, fn) \
	static void name(struct wsman_call *c) \
	{ \
		struct shell *sh = winrs_target(c); \
		if (sh) \
			fn(c, sh); \
	}
ON_SHELL(winrs_command, shell_command)
ON_SHELL(winrs_send, shell_send)
ON_SHELL(winrs_receive, shell_receive)
ON_SHELL(winrs_signal, shell_signal)
ON_SHELL(winrs_delete, shell_delete)
ON_SHELL(winrs_get, shell_get)
#undef ON_SHELL

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

void winrs_register(void)
{
	wsman_register(&winrs_endpoint);
}
