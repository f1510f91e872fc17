/*
 * psrp.c - PowerShell remoting: shells on http://schemas.microsoft.com/
 * powershell/<configuration>, bridged to a runspace process speaking
 * PowerShell's out-of-process protocol (worker).
 *
 * Each shell is one runspace process (`pwsh -sshs`, or the test runspace),
 * started by the monitor from the session configuration's Command as the
 * authenticated user (or its RunAsUser).  WS-Man operations map onto
 * out-of-process packets, one XML element per line on the child's stdin:
 *   Create + creationXml  -> <Data PSGuid=pool>
 *   Command + Arguments   -> <Command PSGuid=P>, then <Data PSGuid=P>
 *   Send stdin / pr       -> <Data Stream='Default'|'PromptResponse'>
 *   Signal ctrl_c         -> <Signal PSGuid=P>;  terminate -> <Close PSGuid=P>
 *   Delete                -> <Close> for each pipeline and the pool
 * Only one packet per target is in flight until its Ack, as the PowerShell
 * client does (pwsh handles lines on a thread pool and could reorder them).
 * Output <Data> lines are split back into PSRP fragments, one per
 * rsp:Stream (Ruby's client reads exactly one fragment per element), and a
 * pipeline is Done when its PIPELINE_STATE reaches Stopped, Completed or
 * Failed.  This file answers the WS-Man actions; the runspace process's
 * pipes, packets, buffers and teardown are psrp_runspace.c's.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/wait.h>

#include <systemd/sd-event.h>

#include "ipc.h"
#include "log.h"
#include "mm.h"
#include "net_state.h"
#include "psrp_wire.h"
#include "endpoints.h"
#include "psrp_int.h"
#include "wsman.h"
#include "xpress.h"

/* The pipeline a CommandId names, or NULL with c answered CommandNotFound. */
static struct target *pipe_target(struct wsman_call *c, struct shell *sh, const char *cid)
{
	struct command *cmd = shell_command_find(sh, cid);

	if (!cmd || !cmd->pipe) {
		wsman_fault(c, SF_COMMAND_NOT_FOUND, NULL);
		return NULL;
	}
	return &cmd->pipe->t;
}

static void psrp_receive(struct wsman_call *c, struct shell *sh)
{
	xmlNodePtr rcv = soap_child(c->req.body, NS_RSP, "Receive");
	xmlNodePtr ds = rcv ? soap_child(rcv, NS_RSP, "DesiredStream") : NULL;
	char cb[SOAP_MAX_ID + 1];
	const char *cid = soap_attr(ds, "CommandId", cb, sizeof cb);
	struct target *t;
	char *want;

	if (!ds) {
		wsman_fault(c, SF_SCHEMA_VALIDATION,
		    "The request has no DesiredStream element. ");
		return;
	}
	want = soap_text(ds);
	if (strcmp(want, "stdout")) {
		wsman_fault(c, SF_INVALID_STREAM, want);
		free(want);
		return;
	}
	free(want);
	if (cid) {
		if (!(t = pipe_target(c, sh, cid)))
			return;
	} else {
		t = &sh->psrp->pool;
	}
	if (psrp_target_has_news(t)) {
		park_fail(&t->recv, SF_TIMED_OUT, NULL);
		psrp_target_answer(t, c);
		return;
	}
	park_call(&t->recv, c);
}

/* ---- Create ----------------------------------------------------------- */

static void on_spawn(void *data, struct ipc_msg *m)
{
	struct shell_open_ctx *oc = data;
	struct shell *sh = oc->sh;
	struct wsman_call *c = oc->c;
	struct psrp *ps = sh->psrp;
	int32_t result;
	uint32_t pid;
	int fds[3] = { -1, -1, -1 };

	free(oc);
	if (!m) {
		sh->opening = false;
		shell_free(sh, "shell-abandoned");
		return;
	}
	c->hr->call = 0;
	if (!mm_read_spawn(m, &result, &pid, fds))
		return;
	sh->opening = false;
	if (sh->killed) {
		for (int i = 0; i < 3; i++)
			close_safe(&fds[i]);
		shell_free(sh, "shell-killed");
		wsman_fault(c, SF_PROCESS_FAILED, "An administrator ended the shell. ");
		return;
	}
	if (result < 0) {
		shell_free(sh, "shell-refused");
		wsman_fault(c, SF_PROCESS_FAILED, "The PowerShell runspace process could not be started. ");
		return;
	}
	ps->pid = (int)pid;
	ps->spawned = true;
	ps->in_fd = fds[0];
	ps->out_fd = fds[1];
	ps->err_fd = fds[2];
	fd_nonblock(ps->in_fd, true);
	fd_nonblock(ps->out_fd, true);
	fd_nonblock(ps->err_fd, true);
	if (sd_event_add_io(NET.ev, &ps->out_src, ps->out_fd, EPOLLIN, psrp_on_stdout, ps) < 0 ||
	    sd_event_add_io(NET.ev, &ps->err_src, ps->err_fd, EPOLLIN, psrp_on_stderr, ps) < 0) {
		log_err("shell %s: cannot watch the runspace's output", sh->id);
		shell_free(sh, "shell-refused");
		wsman_fault(c, SF_INTERNAL_ERROR, "The runspace's output could not be attached. ");
		return;
	}
	sd_event_source_set_description(ps->out_src, "runspace-stdout");
	sd_event_source_set_description(ps->err_src, "runspace-stderr");
	/* creationXml is already base64 of SESSION_CAPABILITY + INIT_RUNSPACEPOOL fragments. */
	psrp_queue_data(&ps->pool, false, ps->creation_xml);
	free(ps->creation_xml);
	ps->creation_xml = NULL;
	shell_audit(sh, NULL, "shell-created", -1);
	/* Windows answers at once; the pool opens while the client polls Receive. */
	shell_create_reply(c, sh);
}

static void on_session(void *data, struct ipc_msg *m)
{
	struct shell_open_ctx *oc = data;
	struct shell *sh = oc->sh;
	struct wsman_call *c = oc->c;
	static char *argv[] = { "runspace" };
	char url[HTTP_URL_MAX], env[sizeof(IPC_SPAWN_URL_ENV) + HTTP_URL_MAX], *envp[] = { env };

	/* sh stays opening until the runspace process is up (on_spawn). */
	if (!shell_session_opened(oc, m))
		return;
	/*
	 * argv is ignored: the monitor runs the configured Command.  The one
	 * thing it cannot know is the URL the client addressed, which it may
	 * give the runspace for $PSSenderInfo.ConnectionString.
	 */
	http_url(c->hr, url, sizeof(url));
	snprintf(env, sizeof(env), IPC_SPAWN_URL_ENV "%s", url);
	c->hr->call = mm_spawn(c->login_id, sh->session, IPC_SPAWN_RUNSPACE, "", 1, argv, 1, envp,
	    on_spawn, oc);
	if (!c->hr->call) {
		free(oc);
		sh->opening = false;
		shell_free(sh, "shell-refused");
		wsman_fault(c, SF_PROCESS_FAILED, "The PowerShell runspace process could not be started. ");
	}
}

static unsigned count_config_shells(uid_t uid, const char *uri)
{
	unsigned n = 0;

	for (struct shell *s = shells; s; s = s->next)
		n += s->uid == uid && str_ieq(s->resource_uri, uri);
	return n;
}

static void psrp_create(struct wsman_call *c, const struct conf_session *sc)
{
	xmlNodePtr body = soap_child(c->req.body, NS_RSP, "Shell");
	const char *ver = soap_option(&c->req, "protocolversion");
	struct shell *sh;
	struct psrp *ps;
	xmlNodePtr cx;
	char *creation;
	struct psrp_pool_info info = { 0 };
	bool have_info;

	if (!ver) {
		wsman_fault(c, SF_PROTOCOL_VERSION_MISSING, NULL);
		return;
	}
	if (ver[0] != '2' || ver[1] != '.') {
		wsman_fault(c, SF_INVALID_OPTIONS,
		    "The PowerShell plug-in supports protocol version 2.x only. ");
		return;
	}
	if (!body || !(cx = soap_child(body, NS_PSH, "creationXml"))) {
		wsman_fault(c, SF_SCHEMA_VALIDATION,
		    "The request has no Shell element with creationXml. ");
		return;
	}
	if (!shell_quota_ok(c, sc->max_shells_per_user, count_config_shells(c->uid, sc->resource_uri)))
		return;
	creation = soap_text(cx);
	{
		/* Forwarded as it is, so make sure it is base64 and nothing else. */
		size_t n = strlen(creation);
		unsigned char *tmp = xmalloc(b64_decoded_max(n) + 1);
		long dl = b64_decode(creation, n, tmp, b64_decoded_max(n));
		have_info = dl > 0 && psrp_pool_info_parse(tmp, (size_t)dl, &info) == 0;
		free(tmp);
		if (dl <= 0) {
			free(creation);
			wsman_fault(c, SF_SCHEMA_VALIDATION, "creationXml is not base64. ");
			return;
		}
		/* Strip the line breaks some clients insert; one packet is one line. */
		char *w = creation;
		for (char *r = creation; *r; r++)
			if (*r != '\r' && *r != '\n' && *r != ' ' && *r != '\t')
				*w++ = *r;
		*w = '\0';
	}

	sh = shell_new(c, body, sc->resource_uri, sc->idle_timeout_ms);
	if (!sh) {
		free(creation);
		return;
	}
	if (!sh->name && soap_child(body, NS_RSP, "Name"))
		sh->name = soap_text(soap_child(body, NS_RSP, "Name"));
	{
		xmlNodePtr it = soap_child(body, NS_RSP, "IdleTimeOut");
		if (it) {
			char *t = soap_text(it);
			long long ms = soap_duration_ms(t);
			free(t);
			if (ms > 0)
				sh->idle_timeout_ms = MIN((uint64_t)ms, sc->max_idle_timeout_ms);
		}
	}
	sh->input_streams = xstrdup("stdin pr");
	sh->output_streams = xstrdup("stdout");
	ps = sh->psrp = xcalloc(1, sizeof *ps);
	sh->ops = &psrp_shell_ops;
	ps->sh = sh;
	memcpy(ps->id, sh->id, sizeof ps->id);
	ps->in_fd = ps->out_fd = ps->err_fd = -1;
	ps->pool_info = info;
	ps->have_pool_info = have_info;
	buf_init(&ps->cap_msg, 0);
	buf_init(&ps->apd_msg, 0);
	buf_init(&ps->wbuf, 0);
	buf_init(&ps->line, PSRP_LINE_MAX);
	buf_init(&ps->errtext, 0);
	psrp_target_init(&ps->pool, ps, POOL_GUID, NULL);
	ps->compression = c->req.compression_xpress;
	ps->drop_output = sc->output_buffering == CONF_BUF_DROP;
	ps->max_in_object = sc->max_recv_object_mb << 20;
	ps->max_in_command = sc->max_recv_data_mb << 20;
	if (!psrp_account_input(c, &ps->pool, creation)) {
		free(creation);
		shell_free(sh, "shell-refused");
		return;
	}
	ps->creation_xml = creation;
	shell_open_session(c, sh, on_session);
}

/* ---- Command, Send, Signal -------------------------------------------- */

/*
 * The PSRP pipeline id of the message that starts a pipeline in a Command's
 * Arguments: CREATE_PIPELINE, or GET_COMMAND_METADATA, which Enter-PSSession
 * and implicit remoting send instead.  As pwsh writes it in PSGuid (lower
 * case).  The message header is Destination, MessageType, RPID, PID; GUIDs
 * are in .NET byte order (the first three fields little-endian).
 */
static int pipeline_id_of(const char *b64, char out[37])
{
	size_t n = strlen(b64);
	unsigned char *bin = xmalloc(b64_decoded_max(n) + 1);
	long len = b64_decode(b64, n, bin, b64_decoded_max(n) + 1);
	struct psrp_fragment f;
	const unsigned char *g;
	int rc = -EINVAL;

	if (len >= 0 && psrp_fragment_parse(bin, (size_t)len, &f) == 0 && f.start &&
	    f.blob_len >= PSRP_MESSAGE_HEADER &&
	    (psrp_msg_type(f.blob, f.blob_len) == PSRP_CREATE_PIPELINE ||
	     psrp_msg_type(f.blob, f.blob_len) == PSRP_GET_COMMAND_METADATA)) {
		g = f.blob + 24;
		snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		    g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6],
		    g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
		rc = 0;
	}
	free(bin);
	return rc;
}

static void psrp_command(struct wsman_call *c, struct shell *sh)
{
	xmlNodePtr cl = soap_child(c->req.body, NS_RSP, "CommandLine");
	xmlNodePtr arg = cl ? soap_child(cl, NS_RSP, "Arguments") : NULL;
	char idbuf[SOAP_MAX_ID + 1], id[37], pipe_id[37];
	const char *cid = soap_attr(cl, "CommandId", idbuf, sizeof idbuf);
	struct command *cmd;
	struct soap_reply r;
	_cleanup_free_ char *args = NULL;

	if (!cl || !arg || soap_next(arg, NS_RSP, "Arguments")) {
		/* The PowerShell plug-in takes exactly one Arguments: the first fragments. */
		wsman_fault(c, SF_SCHEMA_VALIDATION,
		    "A PowerShell command needs exactly one Arguments element. ");
		return;
	}
	if (!shell_command_id_choose(c, sh, cid, id))
		return;
	args = soap_text(arg);
	if (psrp_b64_compact(args) < 0 || !*args) {
		/* Empty would start a pipeline that never gets its CREATE_PIPELINE. */
		const char *why = *args ? "The Arguments are not base64. " : "The Arguments are empty. ";
		wsman_fault(c, SF_SCHEMA_VALIDATION, why);
		return;
	}
	/*
	 * pwsh finds the pipeline by the id inside CREATE_PIPELINE, not by the
	 * WS-Man CommandId; Windows takes it from there too
	 * (WSManPluginTransportManager.cs), so a client that sends no CommandId,
	 * or another one, still reaches its pipeline.  That id must name no
	 * other target: not the pool's (all zeros), not a live pipeline's.
	 */
	if (pipeline_id_of(args, pipe_id) < 0 || str_ieq(pipe_id, POOL_GUID))
		snprintf(pipe_id, sizeof pipe_id, "%s", id);
	if (psrp_target_by_guid(sh->psrp, pipe_id)) {
		wsman_fault(c, SF_COMMAND_ID_CONFLICT, NULL);
		return;
	}
	cmd = xcalloc(1, sizeof *cmd);
	cmd->sh = sh;
	snprintf(cmd->id, sizeof cmd->id, "%s", id);
	cmd->line = xstrdup("(PowerShell pipeline)");
	cmd->in_fd = cmd->out.fd = cmd->err.fd = -1;
	cmd->forced_exit = -1;
	cmd->pipe = xcalloc(1, sizeof *cmd->pipe);
	park_init(&cmd->pipe->closing, cmd->pipe, psrp_pipe_is_closed, psrp_pipe_close_answer);
	psrp_target_init(&cmd->pipe->t, sh->psrp, pipe_id, cmd);
	if (!psrp_account_input(c, &cmd->pipe->t, args)) {
		psrp_target_clear(&cmd->pipe->t);
		free(cmd->pipe);
		free(cmd->line);
		free(cmd);
		return;
	}
	park_init(&cmd->recv, cmd, NULL, NULL);
	cmd->next = sh->cmds;
	sh->cmds = cmd;
	psrp_queue_simple(&cmd->pipe->t, "Command");
	psrp_queue_data(&cmd->pipe->t, false, args);
	shell_audit(sh, cmd, "command-started", -1);
	soap_reply_begin(&r, &c->req, ACT_COMMAND "Response");
	soap_w_start(&r, "rsp:CommandResponse");
	soap_w_elem(&r, "rsp:CommandId", cmd->id);
	wsman_reply(c, &r);
}

static void psrp_send(struct wsman_call *c, struct shell *sh)
{
	xmlNodePtr send = soap_child(c->req.body, NS_RSP, "Send");

	if (!send) {
		wsman_fault(c, SF_SCHEMA_VALIDATION, "The request has no Send element. ");
		return;
	}
	for (xmlNodePtr s = soap_child(send, NS_RSP, "Stream"); s; s = soap_next(s, NS_RSP, "Stream")) {
		char nb[64], cb[SOAP_MAX_ID + 1];
		const char *name = soap_attr(s, "Name", nb, sizeof nb);
		const char *cid = soap_attr(s, "CommandId", cb, sizeof cb);
		struct target *t = &sh->psrp->pool;
		char *text;

		if (!name || (strcmp(name, "stdin") && strcmp(name, "pr"))) {
			wsman_fault(c, SF_INVALID_STREAM, name ? name : "(none)");
			return;
		}
		if (cid && !(t = pipe_target(c, sh, cid)))
			return;
		text = soap_text(s);
		if (sh->psrp->compression) {
			char *plain = psrp_xpress_b64(text);
			free(text);
			text = plain;
		}
		if (!text || psrp_b64_compact(text) < 0) {
			free(text);
			wsman_fault(c, SF_SCHEMA_VALIDATION, "The stream data is not valid. ");
			return;
		}
		if (*text && !psrp_account_input(c, t, text)) {
			free(text);
			return;
		}
		if (*text)
			psrp_queue_data(t, !strcmp(name, "pr"), text);
		free(text);
	}
	shell_send_reply(c);
}

static void psrp_signal(struct wsman_call *c, struct shell *sh)
{
	xmlNodePtr sig = soap_child(c->req.body, NS_RSP, "Signal");
	char cb[SOAP_MAX_ID + 1];
	const char *cid = soap_attr(sig, "CommandId", cb, sizeof cb);
	struct command *cmd = shell_command_find(sh, cid);
	const char *what;
	_cleanup_free_ char *code = NULL;

	if (!sig) {
		wsman_fault(c, SF_SCHEMA_VALIDATION, "The request has no Signal element. ");
		return;
	}
	if (cid && (!cmd || !cmd->pipe)) {
		wsman_fault(c, SF_COMMAND_NOT_FOUND, NULL);
		return;
	}
	code = soap_text(soap_child(sig, NS_RSP, "Code"));
	what = strrchr(code, '/') ? strrchr(code, '/') + 1 : code;
	if (cmd) {
		if (str_ieq(what, "crtl_c") || str_ieq(what, "ctrl_c")) {
			/* PowerShell's stop: the pipeline ends with state Stopped. */
			psrp_queue_simple(&cmd->pipe->t, "Signal");
		} else if (str_ieq(what, "terminate")) {
			/*
			 * As the PowerShell plug-in does on Windows, answer once the
			 * pipeline is closed: the client may then reuse its id at
			 * once (PowerShell.Invoke twice does), and the record goes.
			 */
			park_fail(&cmd->pipe->t.recv, SF_COMMAND_NOT_FOUND, NULL);
			if (!cmd->terminated && !cmd->pipe->t.closed && !sh->psrp->broken)
				psrp_queue_simple(&cmd->pipe->t, "Close");
			cmd->terminated = true;
			/*
			 * Its unread output goes now and reading resumes: pwsh reads
			 * no stdin while a write of its blocks, so it could not see
			 * the Close otherwise.
			 */
			psrp_target_drop_output(&cmd->pipe->t);
			psrp_resume_reading(sh->psrp);
			park_call(&cmd->pipe->closing, c);
			park_wake(&cmd->pipe->closing);
			return;
		} else {
			wsman_fault(c, SF_INVALID_OPTIONS, "The signal code is not supported. ");
			return;
		}
	}
	psrp_signal_reply(c);
}

/* ---- Disconnect, Reconnect, Connect ----------------------------------- */

static void empty_reply(struct wsman_call *c, const char *action, const char *elem)
{
	struct soap_reply r;

	soap_reply_begin(&r, &c->req, action);
	if (elem)
		soap_w_start(&r, elem);
	wsman_reply(c, &r);
}

static void psrp_disconnect(struct wsman_call *c, struct shell *sh)
{
	sh->disconnected = true;
	/* Receives in progress end; the runspace keeps running and its output waits. */
	park_fail(&sh->psrp->pool.recv, SF_SHELL_DISCONNECTED, NULL);
	for (struct command *cmd = sh->cmds; cmd; cmd = cmd->next)
		if (cmd->pipe)
			park_fail(&cmd->pipe->t.recv, SF_SHELL_DISCONNECTED, NULL);
	shell_audit(sh, NULL, "shell-disconnected", -1);
	empty_reply(c, ACT_DISCONNECT "Response", "rsp:DisconnectResponse");
}

static void psrp_reconnect(struct wsman_call *c, struct shell *sh)
{
	sh->disconnected = false;
	shell_audit(sh, NULL, "shell-reconnected", -1);
	empty_reply(c, ACT_RECONNECT "Response", "rsp:ReconnectResponse");
}

/* A whole fragment of ours joins the pool's output as pwsh's own do; b is emptied. */
static void enqueue_built(struct psrp *ps, struct buf *b)
{
	struct psrp_fragment f;

	if (psrp_fragment_parse(b->data, b->len, &f) == 0)
		psrp_enqueue_fragment(&ps->pool, &f);
	buf_reset(b);
}

/*
 * Connect from a new client (Receive-PSSession, Connect-PSSession from
 * another process).  pwsh answers CONNECT_RUNSPACEPOOL only on its WinRM
 * plug-in path, so the bridge answers as wsmprovhost does
 * (ServerRemoteSession.ExecuteConnect), from what the pool was opened with:
 * connectResponseXml is the server's SESSION_CAPABILITY and
 * RUNSPACEPOOL_INIT_DATA; APPLICATION_PRIVATE_DATA, which the client waits
 * for before the pool is Opened, and the Opened state follow on the pool's
 * output.  Nothing reaches pwsh; the pipelines go on as they were.
 */
static void psrp_connect(struct wsman_call *c, struct shell *sh)
{
	xmlNodePtr con = soap_child(c->req.body, NS_RSP, "Connect");
	xmlNodePtr cx = con ? soap_child(con, NS_PSH, "connectXml") : NULL;
	char cb[SOAP_MAX_ID + 1], xml[160];
	struct psrp *ps = sh->psrp;
	struct psrp_connect_req cr;
	struct soap_reply r;
	struct buf out, later;
	unsigned char *bin;
	char *data, *b64;
	long n;

	if (!con) {
		wsman_fault(c, SF_SCHEMA_VALIDATION, "The request has no Connect element. ");
		return;
	}
	if (soap_attr(con, "CommandId", cb, sizeof cb)) {
		/* Attach to a running pipeline: its output waits for the next Receive. */
		struct command *cmd = shell_command_find(sh, cb);
		if (!cmd || !cmd->pipe) {
			wsman_fault(c, SF_COMMAND_NOT_FOUND, NULL);
			return;
		}
		empty_reply(c, ACT_CONNECT "Response", "rsp:ConnectResponse");
		return;
	}
	if (!cx) {
		wsman_fault(c, SF_SCHEMA_VALIDATION, "The request has no connectXml. ");
		return;
	}
	data = soap_text(cx);
	n = psrp_b64_compact(data) < 0 ? -1 : (long)strlen(data);
	bin = xmalloc(b64_decoded_max((size_t)MAX(n, 0)) + 1);
	if (n > 0)
		n = b64_decode(data, (size_t)n, bin, b64_decoded_max((size_t)n));
	free(data);
	if (n <= 0 || psrp_connect_parse(bin, (size_t)n, &cr) < 0) {
		free(bin);
		wsman_fault(c, SF_SCHEMA_VALIDATION,
		    "connectXml must hold SESSION_CAPABILITY and CONNECT_RUNSPACEPOOL, each in one fragment. ");
		return;
	}
	free(bin);
	if (!ps->have_pool_info || memcmp(cr.rpid, ps->pool_info.rpid, sizeof cr.rpid) != 0) {
		wsman_fault(c, SF_SCHEMA_VALIDATION, "CONNECT_RUNSPACEPOOL names another runspace pool. ");
		return;
	}
	/* As ExecuteConnect: a pool is not resized on Connect. */
	if (cr.sizes && cr.min_runspaces != ps->pool_info.min_runspaces &&
	    cr.max_runspaces != ps->pool_info.max_runspaces) {
		wsman_fault(c, SF_SCHEMA_VALIDATION,
		    "CONNECT_RUNSPACEPOOL asks for other MinRunspaces and MaxRunspaces than the pool has. ");
		return;
	}
	if (ps->broken || !ps->cap_msg.len || !ps->apd_msg.len) {
		wsman_fault(c, SF_PROCESS_FAILED, "The runspace pool is not open. ");
		return;
	}
	/* Output the old client never collected belongs to the old client. */
	psrp_target_drop_output(&ps->pool);
	buf_init(&out, 0);
	buf_init(&later, 0);
	/* pwsh's own capability, now naming the pool as ExecuteConnect's does. */
	memcpy((unsigned char *)ps->cap_msg.data + 8, ps->pool_info.rpid, 16);
	psrp_put_fragment(&out, ++ps->last_obj, ps->cap_msg.data, ps->cap_msg.len);
	snprintf(xml, sizeof xml, "<Obj RefId=\"0\"><MS><I32 N=\"MinRunspaces\">%d</I32>"
	    "<I32 N=\"MaxRunspaces\">%d</I32></MS></Obj>",
	    (int)ps->pool_info.min_runspaces, (int)ps->pool_info.max_runspaces);
	psrp_put_message(&out, ++ps->last_obj, PSRP_RUNSPACEPOOL_INIT_DATA, ps->pool_info.rpid, xml);
	psrp_put_fragment(&later, ++ps->last_obj, ps->apd_msg.data, ps->apd_msg.len);
	enqueue_built(ps, &later);
	psrp_put_message(&later, ++ps->last_obj, PSRP_RUNSPACEPOOL_STATE, ps->pool_info.rpid,
	    "<Obj RefId=\"0\"><MS><I32 N=\"RunspaceState\">2</I32></MS></Obj>");
	enqueue_built(ps, &later);
	buf_free(&later);
	sh->disconnected = false;
	b64 = b64_encode(out.data, out.len);
	buf_free(&out);
	soap_reply_begin(&r, &c->req, ACT_CONNECT "Response");
	soap_w_start(&r, "rsp:ConnectResponse");
	soap_w_start(&r, "pwsh:connectResponseXml");
	soap_w_attr(&r, "xmlns:pwsh", NS_PSH);
	soap_w_text(&r, b64);
	free(b64);
	shell_audit(sh, NULL, "shell-connected", -1);
	wsman_reply(c, &r);
	park_wake(&ps->pool.recv);
}

/* ---- dispatch --------------------------------------------------------- */

static bool psrp_handles(const char *uri)
{
	const struct conf_session *sc = conf_session_by_uri(&NET.conf, uri);

	/* A winrs-protocol configuration (enable-remoting's cmd.conf) stays with WinRS. */
	if (sc)
		return sc->protocol == CONF_PROTO_PSRP;
	return str_iprefix(uri, URI_PSH_PREFIX);
}

static void act_create(struct wsman_call *c)
{
	const struct conf_session *sc = conf_session_by_uri(&NET.conf, c->req.resource_uri);

	if (!sc || !sc->enabled || sc->protocol != CONF_PROTO_PSRP) {
		wsman_fault(c, SF_RESOURCE_NOT_FOUND, c->req.resource_uri);
		return;
	}
	psrp_create(c, sc);
}

/*
 * The shell an action names, by ShellId and owner (pypsrp's
 * get_runspace_pools reconnects on the default URI).  `live`: the action
 * needs a connected client and, but for Signal and Receive, a runspace
 * that still runs.
 */
static struct shell *target(struct wsman_call *c, bool live)
{
	struct shell *sh = shell_lookup(c, true);

	if (!sh)
		return NULL;
	if (!sh->psrp || sh->opening) {
		wsman_fault(c, SF_SHELL_NOT_FOUND, sh->id);
		return NULL;
	}
	if (!live)
		return sh;
	if (sh->disconnected && !wsman_action_is(c, ACT_DISCONNECT)) {
		wsman_fault(c, SF_SHELL_DISCONNECTED, NULL);
		return NULL;
	}
	if (sh->psrp->broken && !wsman_action_is(c, ACT_SIGNAL) && !wsman_action_is(c, ACT_RECEIVE)) {
		wsman_fault(c, SF_PROCESS_FAILED, "The PowerShell runspace process ended. ");
		return NULL;
	}
	return sh;
}

static void act_enumerate(struct wsman_call *c)
{
	wsman_fault(c, SF_ACTION_NOT_SUPPORTED, c->req.action);
}

static void psrp_delete(struct wsman_call *c, struct shell *sh)
{
	struct soap_reply r;

	shell_free(sh, "shell-deleted");
	soap_reply_begin(&r, &c->req, ACT_DELETE "Response");
	wsman_reply(c, &r);
}

static void psrp_get(struct wsman_call *c, struct shell *sh)
{
	struct soap_reply r;

	soap_reply_begin(&r, &c->req, ACT_GET "Response");
	shell_write(&r, sh);
	wsman_reply(c, &r);
}

/* An action on one shell: found and checked by target(c, live), then fn. */
#define ON_SHELL(name, live, fn) \
	static void name(struct wsman_call *c) \
	{ \
		struct shell *sh = target(c, live); \
		if (sh) \
			fn(c, sh); \
	}
ON_SHELL(act_delete, false, psrp_delete)
ON_SHELL(act_get, false, psrp_get)
ON_SHELL(act_connect, false, psrp_connect)
ON_SHELL(act_reconnect, false, psrp_reconnect)
ON_SHELL(act_command, true, psrp_command)
ON_SHELL(act_send, true, psrp_send)
ON_SHELL(act_receive, true, psrp_receive)
ON_SHELL(act_signal, true, psrp_signal)
ON_SHELL(act_disconnect, true, psrp_disconnect)
#undef ON_SHELL

/* Any other action: the shell is checked first, as for the ones above. */
static void act_unknown(struct wsman_call *c)
{
	if (target(c, true))
		wsman_fault(c, SF_ACTION_NOT_SUPPORTED, c->req.action);
}

static const struct wsman_action psrp_actions[] = {
	{ ACT_CREATE, act_create },
	{ ACT_ENUMERATE, act_enumerate },
	{ ACT_DELETE, act_delete },
	{ ACT_CONNECT, act_connect },
	{ ACT_RECONNECT, act_reconnect },
	{ ACT_GET, act_get },
	{ ACT_COMMAND, act_command },
	{ ACT_SEND, act_send },
	{ ACT_RECEIVE, act_receive },
	{ ACT_SIGNAL, act_signal },
	{ ACT_DISCONNECT, act_disconnect },
	{ NULL, NULL },
};

static const struct wsman_endpoint psrp_endpoint = {
	.name = "psrp",
	.handles = psrp_handles,
	.actions = psrp_actions,
	.unknown = act_unknown,
};

void psrp_register(void)
{
	wsman_register(&psrp_endpoint);
}
