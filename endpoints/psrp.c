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
 * Failed.
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
#include "shell_int.h"
#include "wsman.h"
#include "xpress.h"

#define POOL_GUID        "00000000-0000-0000-0000-000000000000"

struct frag {
	struct frag *next;
	size_t len;
	uint64_t object_id;
	bool start, end;
	uint32_t msg_type;              /* of the message a start fragment begins, else 0 */
	unsigned char data[];           /* the whole fragment, header included */
};

struct oop_pkt {
	struct oop_pkt *next;
	char *line;                     /* with its newline */
};

/* The pool, or one pipeline: a PSGuid on the wire. */
struct target {
	char guid[37];                  /* lower case, as .NET writes GUIDs */
	struct oop_pkt *q_head, *q_tail;
	bool in_flight;
	struct frag *f_head, *f_tail;
	size_t f_bytes;
	struct park recv;
	/* PIPELINE_STATE of the object being reassembled */
	uint64_t state_obj;
	struct buf state_msg;
	bool capturing;
	bool final_queued;              /* the final PIPELINE_STATE is among the fragments */
	bool done_sent;
	bool closed;
	struct psrp *ps;
	struct command *cmd;            /* NULL for the pool */
	/* What the client sent, for MaxReceived{DataSizePerCommand,ObjectSize}MB */
	uint64_t in_bytes;
	uint64_t in_obj_id, in_obj_bytes;
	/* Send data is a byte stream: a fragment may continue in the next Send. */
	unsigned char in_hdr[PSRP_FRAGMENT_HEADER];
	size_t in_hdr_len;
	size_t in_frag_left;            /* blob bytes of the current fragment still to come */
};

struct psrp_pipe {
	struct target t;
	struct park closing;            /* a Signal terminate waiting for pwsh's CloseAck */
};

struct psrp {
	struct shell *sh;               /* NULL once deleted, while draining */
	char id[37];                    /* the shell's, for the log after it is gone */
	int pid;
	bool spawned, exited, eof, broken;
	int status;
	int in_fd, out_fd, err_fd;
	sd_event_source *out_src, *err_src, *in_src;
	struct buf wbuf, line, errtext;
	struct target pool;
	bool compression;
	bool drop_output;               /* OutputBufferingMode = Drop */
	bool reading_paused;
	/* For Connect from a new client, which pwsh does not answer out of process. */
	struct psrp_pool_info pool_info;        /* from creationXml */
	bool have_pool_info;
	struct buf cap_msg, apd_msg;            /* pwsh's SESSION_CAPABILITY and APPLICATION_PRIVATE_DATA */
	uint64_t last_obj;                      /* the highest object id pwsh used for the pool */
	struct wsman_call *create;      /* the Create waiting for the spawn */
	char *creation_xml;
	uint64_t max_in_object, max_in_command;  /* bytes, from the session configuration */
	unsigned long stray_lines;      /* stdout lines that were not packets */
	/* After Delete: waiting for pwsh to close the pool and exit (psrp_free). */
	bool draining, pool_closed;
	char (*unwinding)[37];          /* pipelines whose final PIPELINE_STATE is still to come */
	size_t n_unwinding;
	uint64_t drain_session;
	sd_event_source *drain_timer;
};

static size_t shell_buffered(const struct psrp *ps);

/* ---- writing packets -------------------------------------------------- */

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void flush_stdin(struct psrp *ps)
{
	while (ps->wbuf.len && ps->in_fd >= 0) {
		ssize_t n = write(ps->in_fd, ps->wbuf.data, ps->wbuf.len);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			buf_reset(&ps->wbuf);
			break;
		}
		buf_consume(&ps->wbuf, (size_t)n);
	}
	if (ps->in_fd < 0)
		return;
	if (ps->wbuf.len && !ps->in_src) {
		int r = sd_event_add_io(NET.ev, &ps->in_src, ps->in_fd, EPOLLOUT, on_stdin, ps);
		if (r < 0) {   /* callers hold targets: no teardown from here */
			log_err_errno(r, "shell %s: cannot watch the runspace's stdin; input dropped",
			    ps->id);
			buf_reset(&ps->wbuf);
		} else {
			sd_event_source_set_description(ps->in_src, "runspace-stdin");
		}
	} else if (ps->in_src)
		sd_event_source_set_enabled(ps->in_src, ps->wbuf.len ? SD_EVENT_ON : SD_EVENT_OFF);
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	(void)s; (void)fd; (void)revents;
	flush_stdin(userdata);
	return 0;
}

/* Write the next queued packet of t if none is awaiting its Ack. */
static void pump(struct target *t)
{
	struct oop_pkt *p = t->q_head;

	if (t->in_flight || !p)
		return;
	t->q_head = p->next;
	if (!t->q_head)
		t->q_tail = NULL;
	buf_appends(&t->ps->wbuf, p->line);
	free(p->line);
	free(p);
	t->in_flight = true;
	flush_stdin(t->ps);
}

static void queue_pkt(struct target *t, char *line)
{
	struct oop_pkt *p = xcalloc(1, sizeof *p);

	p->line = line;
	if (t->q_tail)
		t->q_tail->next = p;
	else
		t->q_head = p;
	t->q_tail = p;
	pump(t);
}

static void queue_data(struct target *t, bool prompt_response, const char *b64)
{
	/* pwsh ends on an empty <Data></Data> (OutOfProcTransportManager.cs): never send one. */
	if (!*b64)
		return;
	queue_pkt(t, xasprintf("<Data Stream='%s' PSGuid='%s'>%s</Data>\n",
	    prompt_response ? "PromptResponse" : "Default", t->guid, b64));
}

static void queue_simple(struct target *t, const char *what)
{
	queue_pkt(t, xasprintf("<%s PSGuid='%s' />\n", what, t->guid));
}

/* ---- targets and fragments -------------------------------------------- */

/*
 * Counts what the client sends to t (base64 PSRP fragments) against the
 * session configuration's limits, as PowerShell's own server does. Returns
 * false after answering c with a fault.
 */
/*
 * Count what the client sent against MaxReceivedObjectSizeMB and
 * MaxReceivedDataSizePerCommandMB.  The data is PowerShell's fragment byte
 * stream, not whole fragments: the client engine reads its send queue in
 * chunks of at most one fragment size (SerializedDataStream.
 * ReadOrRegisterCallback), so under a backlog a fragment ends in the next
 * Send.  pwsh reassembles such a stream itself; only the headers matter here.
 */
static bool account_input(struct wsman_call *c, struct target *t, const char *b64)
{
	const struct psrp *ps = t->ps;
	size_t n = strlen(b64);
	unsigned char *bin = xmalloc(b64_decoded_max(n) + 1);
	long len = b64_decode(b64, n, bin, b64_decoded_max(n) + 1);
	char why[256];
	bool ok = true;
	size_t off = 0;

	if (len < 0) {
		free(bin);
		wsman_fault(c, SF_SCHEMA_VALIDATION, "The stream data is not valid. ");
		return false;
	}
	while (ok && off < (size_t)len) {
		size_t k;

		if (t->in_frag_left) {
			k = MIN(t->in_frag_left, (size_t)len - off);
			t->in_frag_left -= k;
		} else {
			struct psrp_fragment f;
			size_t blob_len;

			k = MIN(sizeof t->in_hdr - t->in_hdr_len, (size_t)len - off);
			memcpy(t->in_hdr + t->in_hdr_len, bin + off, k);
			t->in_hdr_len += k;
			off += k;
			if (t->in_hdr_len < sizeof t->in_hdr)
				break;
			t->in_hdr_len = 0;
			blob_len = (size_t)t->in_hdr[17] << 24 | (size_t)t->in_hdr[18] << 16 |
			    (size_t)t->in_hdr[19] << 8 | t->in_hdr[20];
			/* Parsed as a fragment with an empty blob: only the header is checked. */
			t->in_hdr[17] = t->in_hdr[18] = t->in_hdr[19] = t->in_hdr[20] = 0;
			if (psrp_fragment_parse(t->in_hdr, sizeof t->in_hdr, &f) < 0) {
				wsman_fault(c, SF_SCHEMA_VALIDATION, "The stream data is not a sequence of PSRP fragments. ");
				ok = false;
				break;
			}
			if (f.start || f.object_id != t->in_obj_id) {
				t->in_obj_id = f.object_id;
				t->in_obj_bytes = 0;
			}
			t->in_frag_left = blob_len;
			continue;
		}
		off += k;
		t->in_obj_bytes += k;
		t->in_bytes += k;
		if (t->in_obj_bytes > ps->max_in_object) {
			snprintf(why, sizeof why, "An object of at least %llu bytes was sent; the limit is %llu bytes. ",
			    (unsigned long long)t->in_obj_bytes, (unsigned long long)ps->max_in_object);
			wsman_fault(c, SF_QUOTA_PSRP_OBJECT, why);
			ok = false;
		} else if (t->cmd && t->in_bytes > ps->max_in_command) {
			snprintf(why, sizeof why, "The command was sent %llu bytes; the limit is %llu bytes. ",
			    (unsigned long long)t->in_bytes, (unsigned long long)ps->max_in_command);
			wsman_fault(c, SF_QUOTA_PSRP_DATA, why);
			ok = false;
		}
	}
	free(bin);
	return ok;
}

static bool target_has_news(void *owner);
static void target_answer(void *owner, struct wsman_call *c);

static void target_init(struct target *t, struct psrp *ps, const char *guid, struct command *cmd)
{
	memset(t, 0, sizeof *t);
	snprintf(t->guid, sizeof t->guid, "%s", guid);
	for (char *p = t->guid; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p + 32);
	t->ps = ps;
	t->cmd = cmd;
	buf_init(&t->state_msg, 64 * 1024);
	park_init(&t->recv, t, target_has_news, target_answer);
}

/* Output nobody will receive: a terminated pipeline's, or a cleared target's. */
static void target_drop_output(struct target *t)
{
	while (t->f_head) {
		struct frag *f = t->f_head;
		t->f_head = f->next;
		free(f);
	}
	t->f_tail = NULL;
	t->f_bytes = 0;
}

static void target_clear(struct target *t)
{
	park_fail(&t->recv, SF_COMMAND_NOT_FOUND, NULL);
	while (t->q_head) {
		struct oop_pkt *p = t->q_head;
		t->q_head = p->next;
		free(p->line);
		free(p);
	}
	t->q_tail = NULL;
	target_drop_output(t);
	buf_free(&t->state_msg);
}

static struct target *target_by_guid(struct psrp *ps, const char *guid)
{
	if (str_ieq(guid, POOL_GUID))
		return &ps->pool;
	for (struct command *c = ps->sh->cmds; c; c = c->next)
		if (c->pipe && str_ieq(c->pipe->t.guid, guid))
			return &c->pipe->t;
	return NULL;
}

/* Watch PIPELINE_STATE messages go by: their state decides CommandState Done. */
static void watch_state(struct target *t, const struct psrp_fragment *f)
{
	if (!t->cmd)
		return;
	if (f->start) {
		t->capturing = psrp_msg_type(f->blob, f->blob_len) == PSRP_PIPELINE_STATE;
		t->state_obj = f->object_id;
		buf_reset(&t->state_msg);
	}
	if (!t->capturing || f->object_id != t->state_obj)
		return;
	if (buf_append(&t->state_msg, f->blob, f->blob_len) < 0) {
		t->capturing = false;
		return;
	}
	if (f->end) {
		int state = psrp_pipeline_state(t->state_msg.data, t->state_msg.len);
		if (state == 3 || state == 4 || state == 5)
			t->final_queued = true;
		t->capturing = false;
	}
}

static void enqueue_fragment(struct target *t, const struct psrp_fragment *pf)
{
	struct frag *f = xmalloc(sizeof *f + pf->total_len);

	f->next = NULL;
	f->len = pf->total_len;
	f->object_id = pf->object_id;
	f->start = pf->start;
	f->end = pf->end;
	f->msg_type = pf->start ? psrp_msg_type(pf->blob, pf->blob_len) : 0;
	memcpy(f->data, pf->raw, pf->total_len);
	if (t->f_tail)
		t->f_tail->next = f;
	else
		t->f_head = f;
	t->f_tail = f;
	t->f_bytes += f->len;
	watch_state(t, pf);
}

static size_t shell_buffered(const struct psrp *ps)
{
	size_t n = ps->pool.f_bytes;

	for (struct command *c = ps->sh->cmds; c; c = c->next)
		if (c->pipe)
			n += c->pipe->t.f_bytes;
	return n;
}

/* ---- reading the runspace --------------------------------------------- */

static void psrp_break(struct psrp *ps, const char *why);
static const struct shell_ops psrp_shell_ops;
static void drain_end(struct psrp *ps);
static void pipe_closed(struct command *cmd);
static bool pipe_is_closed(void *owner);
static void pipe_close_answer(void *owner, struct wsman_call *c);

/*
 * What Connect from a new client needs of the pool's opening, as wsmprovhost
 * keeps it: pwsh's SESSION_CAPABILITY and APPLICATION_PRIVATE_DATA (whole in
 * one fragment, as pwsh sends them), and the object ids it has used.
 */
static void remember_pool_message(struct psrp *ps, const struct psrp_fragment *f)
{
	uint32_t type = f->start ? psrp_msg_type(f->blob, f->blob_len) : 0;
	struct buf *keep = type == PSRP_SESSION_CAPABILITY ? &ps->cap_msg :
	    type == PSRP_APPLICATION_PRIVATE_DATA ? &ps->apd_msg : NULL;

	ps->last_obj = MAX(ps->last_obj, f->object_id);
	if (keep && f->end && f->blob_len >= PSRP_MESSAGE_HEADER && f->blob_len <= PSRP_POOL_MSG_MAX) {
		buf_reset(keep);
		buf_append(keep, f->blob, f->blob_len);
	}
}

/* End of input for the runspace (pwsh exits on it); what was still queued is dropped. */
static void end_input(struct psrp *ps)
{
	ps->in_src = sd_event_source_disable_unref(ps->in_src);
	close_safe(&ps->in_fd);
	buf_reset(&ps->wbuf);
}

/* Did this <Data> line carry a PIPELINE_STATE message? */
static bool has_pipeline_state(const struct oop_packet *pk)
{
	unsigned char *bin = xmalloc(b64_decoded_max(pk->data_len));
	long n = b64_decode(pk->data, pk->data_len, bin, b64_decoded_max(pk->data_len));
	struct psrp_fragment f;
	bool found = false;

	for (size_t off = 0; n > 0 && (size_t)n > off && !found; off += f.total_len) {
		if (psrp_fragment_parse(bin + off, (size_t)n - off, &f) < 0)
			break;
		found = f.start && psrp_msg_type(f.blob, f.blob_len) == PSRP_PIPELINE_STATE;
	}
	free(bin);
	return found;
}

/*
 * What a deleted shell's runspace writes (psrp_free): a pipeline's final
 * state lets the pool's Close go once none is left unwinding; the pool's
 * CloseAck lets it end.  The rest is dropped.
 */
static void drain_packet(struct psrp *ps, const char *line, size_t len)
{
	struct oop_packet pk;

	if (oop_parse(line, len, &pk) < 0)
		return;
	if (pk.kind == OOP_DATA && ps->n_unwinding) {
		for (size_t i = 0; i < ps->n_unwinding; i++) {
			if (!str_ieq(ps->unwinding[i], pk.guid) || !has_pipeline_state(&pk))
				continue;
			memcpy(ps->unwinding[i], ps->unwinding[--ps->n_unwinding], sizeof ps->unwinding[i]);
			if (ps->n_unwinding == 0 && ps->in_fd >= 0) {
				buf_appendf(&ps->wbuf, "<Close PSGuid='%s' />\n", POOL_GUID);
				flush_stdin(ps);
			}
			break;
		}
	} else if (pk.kind == OOP_CLOSE_ACK && str_ieq(pk.guid, POOL_GUID) && !ps->pool_closed) {
		/* Closed: end of input, and pwsh exits. */
		ps->pool_closed = true;
		end_input(ps);
		sd_event_source_set_time_relative(ps->drain_timer, PSRP_CLOSE_WAIT_MS * 1000ULL);
	}
}

/*
 * pwsh in SSH server mode (-sshs, the default Command) writes its own
 * remoting errors to stdout behind this prefix, in band, and leaves stderr
 * to the processes it starts.  wsmprovhost ends the shell when its plug-in
 * reports an error; so do we: every waiting client gets the error as a
 * fault, and the runspace sees end of input.
 */
#define RUNSPACE_ERROR_PREFIX "__NamedPipeError__:"

static void runspace_error(struct psrp *ps, const char *text, size_t len)
{
	char why[PSRP_ERROR_TEXT_MAX + 64], clean[PSRP_ERROR_TEXT_MAX + 1];
	size_t n = MIN(len, PSRP_ERROR_TEXT_MAX);

	memcpy(clean, text, n);
	clean[n] = '\0';
	log_sanitize(clean, sizeof clean, clean);
	snprintf(why, sizeof why, "The PowerShell runspace reported an error: %s ", clean);
	psrp_break(ps, why);
	end_input(ps);
}

static void on_packet(struct psrp *ps, char *line, size_t len)
{
	struct oop_packet pk;
	struct target *t;

	if (ps->draining) {
		drain_packet(ps, line, len);
		return;
	}
	if (len >= strlen(RUNSPACE_ERROR_PREFIX) &&
	    strncasecmp(line, RUNSPACE_ERROR_PREFIX, strlen(RUNSPACE_ERROR_PREFIX)) == 0) {
		runspace_error(ps, line + strlen(RUNSPACE_ERROR_PREFIX), len - strlen(RUNSPACE_ERROR_PREFIX));
		return;
	}
	if (oop_parse(line, len, &pk) < 0) {
		/*
		 * Not a packet.  pwsh shares its stdout with the processes it starts
		 * (Start-Process -NoNewWindow, [Diagnostics.Process]::Start), whose
		 * output lands here; wsmprovhost has no console and drops it, so we
		 * drop it too instead of ending the shell.  Output without a newline
		 * glues itself in front of pwsh's next packet: look for that packet.
		 */
		const char *p = line;
		int rc = -EINVAL;

		while (rc < 0 && (p = memchr(p + 1, '<', len - (size_t)(p + 1 - line))) != NULL)
			rc = oop_parse(p, len - (size_t)(p - line), &pk);
		if (++ps->stray_lines <= 5)
			log_warn("runspace of shell %s wrote %zu bytes to stdout that are not a packet (ignored)",
			    ps->sh->id, rc < 0 ? len : (size_t)(p - line));
		if (rc < 0)
			return;
	}
	t = target_by_guid(ps, pk.guid);
	if (!t)
		return;         /* a pipeline we already forgot: pwsh still acks it */
	switch (pk.kind) {
	case OOP_DATA: {
		struct psrp_fragment f;
		size_t off = 0;
		long n;
		unsigned char *bin = xmalloc(b64_decoded_max(pk.data_len));

		n = b64_decode(pk.data, pk.data_len, bin, b64_decoded_max(pk.data_len));
		if (n < 0) {
			free(bin);
			psrp_break(ps, "The runspace process sent invalid base64. ");
			return;
		}
		while ((size_t)n > off) {
			if (psrp_fragment_parse(bin + off, (size_t)n - off, &f) < 0) {
				free(bin);
				psrp_break(ps, "The runspace process sent a malformed PSRP fragment. ");
				return;
			}
			if (t == &ps->pool)
				remember_pool_message(ps, &f);
			if (!t->cmd || !t->cmd->terminated)    /* nobody will receive it */
				enqueue_fragment(t, &f);
			off += f.total_len;
		}
		free(bin);
		park_wake(&t->recv);
		break;
	}
	case OOP_DATA_ACK:
	case OOP_COMMAND_ACK:
	case OOP_SIGNAL_ACK:
	case OOP_CLOSE_ACK:
		t->in_flight = false;
		if (pk.kind == OOP_CLOSE_ACK)
			t->closed = true;
		if (t->closed && t->cmd && t->cmd->terminated) {
			pipe_closed(t->cmd);    /* frees t */
			break;
		}
		pump(t);
		break;
	default:
		/* A runspace never sends Command, Signal or Close. */
		psrp_break(ps, "The runspace process sent an unexpected packet. ");
		break;
	}
}

/*
 * Drop: discard the oldest whole output objects of pipelines until under the
 * limit.  Only objects whose every fragment is queued go, so the client never
 * sees half an object; pool messages and pipeline states are kept.
 */
static void drop_oldest(struct psrp *ps)
{
	for (struct command *c = ps->sh->cmds; c && shell_buffered(ps) > PSRP_BUFFER_MAX; c = c->next) {
		struct target *t = c->pipe ? &c->pipe->t : NULL;

		while (t && t->f_head && shell_buffered(ps) > PSRP_BUFFER_MAX) {
			struct frag *f = t->f_head;
			uint64_t obj = f->object_id;
			bool complete = false;

			if (!f->start || f->msg_type == PSRP_PIPELINE_STATE)
				break;
			for (struct frag *g = f; g && g->object_id == obj; g = g->next)
				if (g->end)
					complete = true;
			if (!complete)
				break;
			while (t->f_head && t->f_head->object_id == obj) {
				struct frag *g = t->f_head;
				bool end = g->end;
				t->f_head = g->next;
				t->f_bytes -= g->len;
				free(g);
				if (end)
					break;
			}
			if (!t->f_head)
				t->f_tail = NULL;
		}
	}
}

static int on_out(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct psrp *ps = userdata;
	char tmp[65536];
	ssize_t n;
	(void)s; (void)revents;

	n = read(fd, tmp, sizeof tmp);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0 && ps->draining) {
		drain_end(ps);
		return 0;
	}
	if (n <= 0) {
		ps->eof = true;
		ps->out_src = sd_event_source_disable_unref(ps->out_src);
		close_safe(&ps->out_fd);
		if (!ps->broken && ps->sh->opening == false)
			psrp_break(ps, "The PowerShell runspace process ended. ");
		return 0;
	}
	for (ssize_t i = 0; i < n; i++) {
		char *nl = memchr(tmp + i, '\n', (size_t)(n - i));
		size_t chunk = nl ? (size_t)(nl - (tmp + i)) : (size_t)(n - i);

		if (buf_append(&ps->line, tmp + i, chunk) < 0) {
			psrp_break(ps, "The runspace process sent a packet that is too large. ");
			return 0;
		}
		i += (ssize_t)chunk;
		if (!nl)
			break;
		if (ps->line.len && ps->line.data[ps->line.len - 1] == '\r')
			ps->line.len--;
		if (ps->line.len)
			on_packet(ps, buf_str(&ps->line), ps->line.len);
		buf_reset(&ps->line);
		if (ps->broken || ps->draining)
			return 0;
	}
	if (ps->draining)
		return 0;
	if (shell_buffered(ps) > PSRP_BUFFER_MAX) {
		if (ps->drop_output) {
			drop_oldest(ps);
		} else if (ps->out_src) {
			/* Block: stop reading while too much waits for Receives; the runspace blocks. */
			ps->reading_paused = true;
			sd_event_source_set_enabled(ps->out_src, SD_EVENT_OFF);
		}
	}
	return 0;
}

static int on_err(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct psrp *ps = userdata;
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof tmp);
	(void)s; (void)revents;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		ps->err_src = sd_event_source_disable_unref(ps->err_src);
		close_safe(&ps->err_fd);
		return 0;
	}
	/* Kept for the log when the runspace dies; bounded. */
	if (ps->errtext.len < 4096)
		buf_append(&ps->errtext, tmp, MIN((size_t)n, 4096 - ps->errtext.len));
	return 0;
}

static void resume_reading(struct psrp *ps)
{
	if (ps->reading_paused && ps->out_src && shell_buffered(ps) < PSRP_BUFFER_MAX / 2) {
		ps->reading_paused = false;
		sd_event_source_set_enabled(ps->out_src, SD_EVENT_ON);
	}
}

/* The runspace is gone or talks nonsense: every waiting client hears so now. */
static void psrp_break(struct psrp *ps, const char *why)
{
	char msg[512];

	if (ps->broken)
		return;
	ps->broken = true;
	buf_str(&ps->errtext);
	snprintf(msg, sizeof msg, "%s%s", why, ps->errtext.len ? "See the server log. " : "");
	log_warn("runspace of shell %s: %s%.*s", ps->sh->id, why, (int)ps->errtext.len,
	    (char *)ps->errtext.data);
	park_fail(&ps->pool.recv, SF_PROCESS_FAILED, msg);
	for (struct command *c = ps->sh->cmds, *next; c; c = next) {
		next = c->next;
		if (!c->pipe)
			continue;
		park_fail(&c->pipe->t.recv, SF_PROCESS_FAILED, msg);
		if (c->terminated)
			pipe_closed(c);         /* no CloseAck will come: the pipeline is gone */
	}
}

/* ---- Receive ---------------------------------------------------------- */

static bool target_has_news(void *owner)
{
	struct target *t = owner;

	return t->f_head || (t->final_queued && !t->done_sent) || t->ps->broken;
}

static void target_answer(void *owner, struct wsman_call *c)
{
	struct target *t = owner;
	struct psrp *ps = t->ps;
	struct soap_reply r;
	size_t budget = c->max_envelope > REPLY_OVERHEAD * 2 ? c->max_envelope - REPLY_OVERHEAD : 1024;
	size_t used = 0;

	if (ps->broken && !t->f_head) {
		wsman_fault(c, SF_PROCESS_FAILED, "The PowerShell runspace process ended. ");
		return;
	}
	soap_reply_begin(&r, &c->req, ACT_RECEIVE "Response");
	soap_w_start(&r, "rsp:ReceiveResponse");
	/* Whole fragments only, at least one, as many as the envelope holds. */
	while (t->f_head) {
		struct frag *f = t->f_head;
		size_t enc = (f->len + 2) / 3 * 4 + 120;
		char *b64;

		if (used && used + enc > budget)
			break;
		if (ps->compression) {
			/* Compression was negotiated: stored XPRESS chunks, which every client reads. */
			struct buf framed;
			buf_init(&framed, 0);
			xpress_winrm_encode_stored(f->data, f->len, &framed);
			b64 = b64_encode(framed.data, framed.len);
			buf_free(&framed);
		} else {
			b64 = b64_encode(f->data, f->len);
		}
		soap_w_start(&r, "rsp:Stream");
		soap_w_attr(&r, "Name", "stdout");
		if (t->cmd)
			soap_w_attr(&r, "CommandId", t->cmd->id);
		soap_w_text(&r, b64);
		soap_w_end(&r);
		free(b64);
		used += enc;
		t->f_head = f->next;
		if (!t->f_head)
			t->f_tail = NULL;
		t->f_bytes -= f->len;
		free(f);
	}
	if (t->cmd) {
		soap_w_start(&r, "rsp:CommandState");
		soap_w_attr(&r, "CommandId", t->cmd->id);
		if (t->final_queued && !t->f_head) {
			soap_w_attr(&r, "State", STATE_URI "Done");
			soap_w_elem(&r, "rsp:ExitCode", "0");
			t->done_sent = true;
		} else {
			soap_w_attr(&r, "State", STATE_URI "Running");
		}
		soap_w_end(&r);
	}
	wsman_reply(c, &r);
	resume_reading(ps);
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
		struct command *cmd = shell_command_find(sh, cid);
		if (!cmd || !cmd->pipe) {
			wsman_fault(c, SF_COMMAND_NOT_FOUND, NULL);
			return;
		}
		t = &cmd->pipe->t;
	} else {
		t = &sh->psrp->pool;
	}
	if (target_has_news(t)) {
		park_fail(&t->recv, SF_TIMED_OUT, NULL);
		target_answer(t, c);
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
	if (sd_event_add_io(NET.ev, &ps->out_src, ps->out_fd, EPOLLIN, on_out, ps) < 0 ||
	    sd_event_add_io(NET.ev, &ps->err_src, ps->err_fd, EPOLLIN, on_err, ps) < 0) {
		log_err("shell %s: cannot watch the runspace's output", sh->id);
		shell_free(sh, "shell-refused");
		wsman_fault(c, SF_INTERNAL_ERROR, "The runspace's output could not be attached. ");
		return;
	}
	sd_event_source_set_description(ps->out_src, "runspace-stdout");
	sd_event_source_set_description(ps->err_src, "runspace-stderr");
	/* creationXml is already base64 of SESSION_CAPABILITY + INIT_RUNSPACEPOOL fragments. */
	queue_data(&ps->pool, false, ps->creation_xml);
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
	target_init(&ps->pool, ps, POOL_GUID, NULL);
	ps->compression = c->req.compression_xpress;
	ps->drop_output = sc->output_buffering == CONF_BUF_DROP;
	ps->max_in_object = sc->max_recv_object_mb << 20;
	ps->max_in_command = sc->max_recv_data_mb << 20;
	if (!account_input(c, &ps->pool, creation)) {
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
	char *args;

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
		free(args);
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
	if (target_by_guid(sh->psrp, pipe_id)) {
		wsman_fault(c, SF_COMMAND_ID_CONFLICT, NULL);
		free(args);
		return;
	}
	cmd = xcalloc(1, sizeof *cmd);
	cmd->sh = sh;
	snprintf(cmd->id, sizeof cmd->id, "%s", id);
	cmd->line = xstrdup("(PowerShell pipeline)");
	cmd->in_fd = cmd->out.fd = cmd->err.fd = -1;
	cmd->forced_exit = -1;
	cmd->pipe = xcalloc(1, sizeof *cmd->pipe);
	park_init(&cmd->pipe->closing, cmd->pipe, pipe_is_closed, pipe_close_answer);
	target_init(&cmd->pipe->t, sh->psrp, pipe_id, cmd);
	if (!account_input(c, &cmd->pipe->t, args)) {
		target_clear(&cmd->pipe->t);
		free(cmd->pipe);
		free(cmd->line);
		free(cmd);
		free(args);
		return;
	}
	park_init(&cmd->recv, cmd, NULL, NULL);
	cmd->next = sh->cmds;
	sh->cmds = cmd;
	queue_simple(&cmd->pipe->t, "Command");
	queue_data(&cmd->pipe->t, false, args);
	free(args);
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
		if (cid) {
			struct command *cmd = shell_command_find(sh, cid);
			if (!cmd || !cmd->pipe) {
				wsman_fault(c, SF_COMMAND_NOT_FOUND, NULL);
				return;
			}
			t = &cmd->pipe->t;
		}
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
		if (*text && !account_input(c, t, text)) {
			free(text);
			return;
		}
		if (*text)
			queue_data(t, !strcmp(name, "pr"), text);
		free(text);
	}
	shell_send_reply(c);
}

static void signal_reply(struct wsman_call *c)
{
	struct soap_reply r;

	soap_reply_begin(&r, &c->req, ACT_SIGNAL "Response");
	soap_w_start(&r, "rsp:SignalResponse");
	wsman_reply(c, &r);
}

static bool pipe_is_closed(void *owner)
{
	struct psrp_pipe *p = owner;

	return p->t.closed || p->t.ps->broken;
}

static void pipe_close_answer(void *owner, struct wsman_call *c)
{
	struct psrp_pipe *p = owner;

	signal_reply(c);
	shell_command_free(p->t.cmd);
}

/* A terminated pipeline is closed in pwsh (or pwsh is gone): answer its Signal, forget it. */
static void pipe_closed(struct command *cmd)
{
	if (cmd->pipe->closing.call)
		park_wake(&cmd->pipe->closing);
	else
		shell_command_free(cmd);
}

/* shell.c's shell_command_free, for a PowerShell pipeline. */
static void psrp_pipe_free(struct command *cmd)
{
	park_fail(&cmd->pipe->closing, SF_COMMAND_NOT_FOUND, NULL);
	target_clear(&cmd->pipe->t);
	free(cmd->pipe);
	cmd->pipe = NULL;
}

static void psrp_signal(struct wsman_call *c, struct shell *sh)
{
	xmlNodePtr sig = soap_child(c->req.body, NS_RSP, "Signal");
	char cb[SOAP_MAX_ID + 1];
	const char *cid = soap_attr(sig, "CommandId", cb, sizeof cb);
	struct command *cmd = shell_command_find(sh, cid);
	const char *what;
	char *code;

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
			queue_simple(&cmd->pipe->t, "Signal");
		} else if (str_ieq(what, "terminate")) {
			/*
			 * As the PowerShell plug-in does on Windows, answer once the
			 * pipeline is closed: the client may then reuse its id at
			 * once (PowerShell.Invoke twice does), and the record goes.
			 */
			free(code);
			park_fail(&cmd->pipe->t.recv, SF_COMMAND_NOT_FOUND, NULL);
			if (!cmd->terminated && !cmd->pipe->t.closed && !sh->psrp->broken)
				queue_simple(&cmd->pipe->t, "Close");
			cmd->terminated = true;
			/*
			 * Its unread output goes now and reading resumes: pwsh reads
			 * no stdin while a write of its blocks, so it could not see
			 * the Close otherwise.
			 */
			target_drop_output(&cmd->pipe->t);
			resume_reading(sh->psrp);
			park_call(&cmd->pipe->closing, c);
			park_wake(&cmd->pipe->closing);
			return;
		} else {
			free(code);
			wsman_fault(c, SF_INVALID_OPTIONS, "The signal code is not supported. ");
			return;
		}
	}
	free(code);
	signal_reply(c);
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
		enqueue_fragment(&ps->pool, &f);
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
	target_drop_output(&ps->pool);
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

/* ---- Delete and teardown ---------------------------------------------- */

static unsigned n_draining;     /* deleted shells whose runspace is closing */

static void psrp_release(struct psrp *ps)
{
	ps->drain_timer = sd_event_source_disable_unref(ps->drain_timer);
	ps->in_src = sd_event_source_disable_unref(ps->in_src);
	ps->out_src = sd_event_source_disable_unref(ps->out_src);
	ps->err_src = sd_event_source_disable_unref(ps->err_src);
	close_safe(&ps->in_fd);
	close_safe(&ps->out_fd);
	close_safe(&ps->err_fd);
	buf_free(&ps->wbuf);
	buf_free(&ps->line);
	buf_free(&ps->errtext);
	buf_free(&ps->cap_msg);
	buf_free(&ps->apd_msg);
	free(ps->creation_xml);
	free(ps->unwinding);
	free(ps);
}

/* The runspace is gone, or is taking too long: the monitor ends what is left of the session. */
static void drain_end(struct psrp *ps)
{
	n_draining--;
	mm_session_close(ps->drain_session);
	psrp_release(ps);
}

static int on_drain_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct psrp *ps = userdata;
	(void)s; (void)usec;

	if (ps->pool_closed)
		log_info("runspace of deleted shell %s closed its pool but did not end within %d ms; ending it",
		    ps->id, PSRP_CLOSE_WAIT_MS);
	else
		log_warn("runspace of deleted shell %s did not ack the pool's Close within %d ms; ending it",
		    ps->id, PSRP_CLOSE_WAIT_MS);
	drain_end(ps);
	return 0;
}

/*
 * Delete: Close every pipeline, then the pool, as wsmprovhost closes its
 * pool; pwsh stops the pipelines (their finally blocks run), closes the
 * runspaces (PowerShell.Exiting runs) and acks the pool's Close.  pwsh acks
 * a pipeline's Close before the pipeline has unwound, and a pool closed
 * meanwhile cuts the unwinding short, so the pool's Close waits for each
 * running pipeline's final PIPELINE_STATE.  The pool's CloseAck is followed
 * by end of input, on which pwsh exits; the session, and with it every
 * process it started, ends when pwsh's stdout closes, or PSRP_CLOSE_WAIT_MS
 * after the Delete or the ack if the ack or the exit does not come.
 * Meanwhile the shell is gone for clients, and what pwsh writes is read and
 * dropped so that it cannot block before the ack.  Only what the pipe takes
 * is written now: a runspace that stopped reading must not block the worker.
 * Returns true when the close of sh->session was taken over.
 */
static bool psrp_free(struct shell *sh)
{
	struct psrp *ps = sh->psrp;
	bool drain = false;

	if (!ps)
		return false;
	if (ps->in_fd >= 0 && !ps->broken) {
		/* Not when the worker is ending: the monitor ends every session then. */
		drain = ps->out_src && sh->session && n_draining < PSRP_DRAINS_MAX &&
		    sd_event_get_state(NET.ev) != SD_EVENT_FINISHED;
		for (struct command *c = sh->cmds; c; c = c->next) {
			if (!c->pipe)
				continue;
			if (!c->pipe->t.closed)
				buf_appendf(&ps->wbuf, "<Close PSGuid='%s' />\n", c->pipe->t.guid);
			if (drain && !c->pipe->t.final_queued) {
				ps->unwinding = xrealloc(ps->unwinding, (ps->n_unwinding + 1) * sizeof *ps->unwinding);
				memcpy(ps->unwinding[ps->n_unwinding++], c->pipe->t.guid, sizeof *ps->unwinding);
			}
		}
		if (!ps->n_unwinding)
			buf_appendf(&ps->wbuf, "<Close PSGuid='%s' />\n", POOL_GUID);
		flush_stdin(ps);
	}
	for (struct command *c = sh->cmds; c; c = c->next)
		if (c->pipe)
			psrp_pipe_free(c);
	target_clear(&ps->pool);
	sh->psrp = NULL;
	if (drain) {
		int r = sd_event_add_time_relative(NET.ev, &ps->drain_timer, CLOCK_MONOTONIC,
		    PSRP_CLOSE_WAIT_MS * 1000ULL, 0, on_drain_timeout, ps);
		if (r >= 0) {
			sd_event_source_set_description(ps->drain_timer, "runspace-close");
			ps->sh = NULL;
			ps->draining = true;
			ps->drain_session = sh->session;
			sd_event_source_set_enabled(ps->out_src, SD_EVENT_ON);
			n_draining++;
			return true;
		}
		log_warn_errno(r, "shell %s: cannot wait for the runspace's Close; ending it", sh->id);
	}
	psrp_release(ps);
	return false;
}

static void psrp_child_exited(struct shell *sh, int pid, int status)
{
	struct psrp *ps = sh->psrp;

	if (!ps || pid != ps->pid)
		return;
	ps->exited = true;
	ps->status = status;
	if (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status)))
		psrp_break(ps, "The PowerShell runspace process ended unexpectedly. ");
	else
		psrp_break(ps, "The PowerShell runspace process ended. ");
}

static bool psrp_sweep(struct shell *sh)
{
	struct psrp *ps = sh->psrp;
	bool waiting;

	park_check_client(&ps->pool.recv);
	waiting = ps->pool.recv.call != NULL;
	for (struct command *c = sh->cmds, *next; c; c = next) {
		next = c->next;
		if (!c->pipe)
			continue;
		park_check_client(&c->pipe->t.recv);
		waiting |= c->pipe->t.recv.call != NULL;
	}
	return waiting;
}

/* ---- dispatch --------------------------------------------------------- */

static bool psrp_compressed(const struct shell *sh)
{
	return sh->psrp && sh->psrp->compression;
}

static const struct shell_ops psrp_shell_ops = {
	.free = psrp_free,
	.pipe_free = psrp_pipe_free,
	.child_exited = psrp_child_exited,
	.sweep = psrp_sweep,
	.compressed = psrp_compressed,
};

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

static void act_delete(struct wsman_call *c)
{
	struct shell *sh = target(c, false);
	struct soap_reply r;

	if (!sh)
		return;
	shell_free(sh, "shell-deleted");
	soap_reply_begin(&r, &c->req, ACT_DELETE "Response");
	wsman_reply(c, &r);
}

static void act_get(struct wsman_call *c)
{
	struct shell *sh = target(c, false);
	struct soap_reply r;

	if (!sh)
		return;
	soap_reply_begin(&r, &c->req, ACT_GET "Response");
	shell_write(&r, sh);
	wsman_reply(c, &r);
}

static void act_connect(struct wsman_call *c)
{
	struct shell *sh = target(c, false);

	if (sh)
		psrp_connect(c, sh);
}

static void act_reconnect(struct wsman_call *c)
{
	struct shell *sh = target(c, false);

	if (sh)
		psrp_reconnect(c, sh);
}

static void act_command(struct wsman_call *c)
{
	struct shell *sh = target(c, true);

	if (sh)
		psrp_command(c, sh);
}

static void act_send(struct wsman_call *c)
{
	struct shell *sh = target(c, true);

	if (sh)
		psrp_send(c, sh);
}

static void act_receive(struct wsman_call *c)
{
	struct shell *sh = target(c, true);

	if (sh)
		psrp_receive(c, sh);
}

static void act_signal(struct wsman_call *c)
{
	struct shell *sh = target(c, true);

	if (sh)
		psrp_signal(c, sh);
}

static void act_disconnect(struct wsman_call *c)
{
	struct shell *sh = target(c, true);

	if (sh)
		psrp_disconnect(c, sh);
}

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
