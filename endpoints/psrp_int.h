/*
 * psrp_int.h - what the PSRP bridge's two halves share (worker only):
 * psrp.c answers the WS-Man actions, psrp_runspace.c runs the runspace
 * process's pipes, packets, output buffers and teardown.
 */
#ifndef WINRMD_PSRP_INT_H
#define WINRMD_PSRP_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "psrp_wire.h"
#include "shell_int.h"
#include "util.h"

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

struct wsman_call;

/* psrp_runspace.c: packets to the runspace, one in flight per target. */
void psrp_queue_data(struct target *t, bool prompt_response, const char *b64);
void psrp_queue_simple(struct target *t, const char *what);
/* Targets: the pool, or one pipeline. */
void psrp_target_init(struct target *t, struct psrp *ps, const char *guid, struct command *cmd);
struct target *psrp_target_by_guid(struct psrp *ps, const char *guid);
void psrp_target_clear(struct target *t);
void psrp_target_drop_output(struct target *t);
bool psrp_target_has_news(void *owner);
void psrp_target_answer(void *owner, struct wsman_call *c);
void psrp_enqueue_fragment(struct target *t, const struct psrp_fragment *pf);
/* Send data against MaxReceived{DataSizePerCommand,ObjectSize}MB; false: c was answered. */
bool psrp_account_input(struct wsman_call *c, struct target *t, const char *b64);
/* The runspace's stdout and stderr; reading again once the buffers drained. */
int psrp_on_stdout(sd_event_source *s, int fd, uint32_t revents, void *userdata);
int psrp_on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata);
void psrp_resume_reading(struct psrp *ps);
/* A Signal terminate waits for pwsh's CloseAck of its pipeline. */
bool psrp_pipe_is_closed(void *owner);
void psrp_pipe_close_answer(void *owner, struct wsman_call *c);
void psrp_signal_reply(struct wsman_call *c);
/* What a PSRP shell plugs into shell.c (teardown, exits, sweep, Get). */
extern const struct shell_ops psrp_shell_ops;

#endif
