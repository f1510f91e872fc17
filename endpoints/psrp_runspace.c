/*
 * psrp_runspace.c - the runspace process behind a PSRP shell (worker).
 *
 * One process per shell, speaking PowerShell's out-of-process protocol:
 * one XML element per line.  This half writes packets to its stdin, one in
 * flight per target (the pool, or a pipeline) until its Ack, as
 * PowerShell's client does; reads its stdout back into PSRP fragments
 * waiting for Receives, within bounded buffers (reading pauses when they
 * are full); turns pwsh's own errors into a fault for every waiting
 * Receive; and on Delete lets pwsh close its pipelines and pool before the
 * session ends.  psrp.c maps the WS-Man actions onto it.
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
#include "psrp_int.h"
#include "psrp_wire.h"
#include "wsman.h"
#include "xpress.h"

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

void psrp_queue_data(struct target *t, bool prompt_response, const char *b64)
{
	/* pwsh ends on an empty <Data></Data> (OutOfProcTransportManager.cs): never send one. */
	if (!*b64)
		return;
	queue_pkt(t, xasprintf("<Data Stream='%s' PSGuid='%s'>%s</Data>\n",
	    prompt_response ? "PromptResponse" : "Default", t->guid, b64));
}

void psrp_queue_simple(struct target *t, const char *what)
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
bool psrp_account_input(struct wsman_call *c, struct target *t, const char *b64)
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


void psrp_target_init(struct target *t, struct psrp *ps, const char *guid, struct command *cmd)
{
	memset(t, 0, sizeof *t);
	snprintf(t->guid, sizeof t->guid, "%s", guid);
	for (char *p = t->guid; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p + 32);
	t->ps = ps;
	t->cmd = cmd;
	buf_init(&t->state_msg, 64 * 1024);
	park_init(&t->recv, t, psrp_target_has_news, psrp_target_answer);
}

/* Output nobody will receive: a terminated pipeline's, or a cleared target's. */
void psrp_target_drop_output(struct target *t)
{
	while (t->f_head) {
		struct frag *f = t->f_head;
		t->f_head = f->next;
		free(f);
	}
	t->f_tail = NULL;
	t->f_bytes = 0;
}

void psrp_target_clear(struct target *t)
{
	park_fail(&t->recv, SF_COMMAND_NOT_FOUND, NULL);
	while (t->q_head) {
		struct oop_pkt *p = t->q_head;
		t->q_head = p->next;
		free(p->line);
		free(p);
	}
	t->q_tail = NULL;
	psrp_target_drop_output(t);
	buf_free(&t->state_msg);
}

struct target *psrp_target_by_guid(struct psrp *ps, const char *guid)
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

void psrp_enqueue_fragment(struct target *t, const struct psrp_fragment *pf)
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
static void drain_end(struct psrp *ps);
static void pipe_closed(struct command *cmd);

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
	t = psrp_target_by_guid(ps, pk.guid);
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
				psrp_enqueue_fragment(t, &f);
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

int psrp_on_stdout(sd_event_source *s, int fd, uint32_t revents, void *userdata)
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

int psrp_on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata)
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

void psrp_resume_reading(struct psrp *ps)
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

bool psrp_target_has_news(void *owner)
{
	struct target *t = owner;

	return t->f_head || (t->final_queued && !t->done_sent) || t->ps->broken;
}

void psrp_target_answer(void *owner, struct wsman_call *c)
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
	psrp_resume_reading(ps);
}

void psrp_signal_reply(struct wsman_call *c)
{
	struct soap_reply r;

	soap_reply_begin(&r, &c->req, ACT_SIGNAL "Response");
	soap_w_start(&r, "rsp:SignalResponse");
	wsman_reply(c, &r);
}

bool psrp_pipe_is_closed(void *owner)
{
	struct psrp_pipe *p = owner;

	return p->t.closed || p->t.ps->broken;
}

void psrp_pipe_close_answer(void *owner, struct wsman_call *c)
{
	struct psrp_pipe *p = owner;

	psrp_signal_reply(c);
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
	psrp_target_clear(&cmd->pipe->t);
	free(cmd->pipe);
	cmd->pipe = NULL;
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
	psrp_target_clear(&ps->pool);
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

static bool psrp_compressed(const struct shell *sh)
{
	return sh->psrp && sh->psrp->compression;
}

const struct shell_ops psrp_shell_ops = {
	.free = psrp_free,
	.pipe_free = psrp_pipe_free,
	.child_exited = psrp_child_exited,
	.sweep = psrp_sweep,
	.compressed = psrp_compressed,
};
