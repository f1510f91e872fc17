/*
 * psrp_wire.h - parsers for what a runspace process and PowerShell clients
 * send: out-of-process packets, PSRP fragments and message headers (worker).
 *
 * All of it is untrusted: packets come from a process the user controls,
 * fragments from the network.  Every parser here has a fuzz harness.
 */
#ifndef WINRMD_PSRP_WIRE_H
#define WINRMD_PSRP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PSRP_FRAGMENT_HEADER     21
#define PSRP_MESSAGE_HEADER      40
#define PSRP_SESSION_CAPABILITY  0x00010002u
#define PSRP_INIT_RUNSPACEPOOL   0x00010004u
#define PSRP_CONNECT_RUNSPACEPOOL 0x00010008u
#define PSRP_RUNSPACEPOOL_STATE  0x00021005u
#define PSRP_APPLICATION_PRIVATE_DATA 0x00021009u
#define PSRP_RUNSPACEPOOL_INIT_DATA 0x0002100Bu
#define PSRP_DEST_CLIENT         1u
#define PSRP_DEST_SERVER         2u
#define PSRP_PIPELINE_STATE      0x00041006u
#define PSRP_CREATE_PIPELINE     0x00021006u
#define PSRP_GET_COMMAND_METADATA 0x0002100Au  /* starts a pipeline too (Enter-PSSession) */

/* One fragment (MS-PSRP 2.2.4): big-endian header, then the blob. */
struct psrp_fragment {
	uint64_t object_id, fragment_id;
	bool start, end;
	const unsigned char *blob;
	size_t blob_len;
	const unsigned char *raw;       /* the whole fragment */
	size_t total_len;
};

int psrp_fragment_parse(const unsigned char *p, size_t n, struct psrp_fragment *f);
/* MessageType of a message starting at blob (0 if too short). */
uint32_t psrp_msg_type(const unsigned char *blob, size_t n);
/* PipelineState from a PIPELINE_STATE message, or -ENOENT. */
int psrp_pipeline_state(const unsigned char *msg, size_t n);
/* The <I32 N="name"> property of a message (0 <= value <= INT32_MAX); -ENOENT or -EINVAL. */
int psrp_msg_i32(const unsigned char *msg, size_t n, const char *name, int32_t *out);

/* What a pool was opened with: the client's RPID and INIT_RUNSPACEPOOL's sizes. */
struct psrp_pool_info {
	unsigned char rpid[16];
	int32_t min_runspaces, max_runspaces;
};
/* From the fragments of a creationXml; -EINVAL without a whole INIT_RUNSPACEPOOL. */
int psrp_pool_info_parse(const unsigned char *p, size_t n, struct psrp_pool_info *out);

/* A connectXml (MS-PSRP 3.1.5.3.14): SESSION_CAPABILITY, then CONNECT_RUNSPACEPOOL. */
struct psrp_connect_req {
	unsigned char rpid[16];         /* of CONNECT_RUNSPACEPOOL */
	bool sizes;                     /* it asks for MinRunspaces and MaxRunspaces */
	int32_t min_runspaces, max_runspaces;
};
/* Exactly two whole fragments, both to the server, in that order; else -EINVAL. */
int psrp_connect_parse(const unsigned char *p, size_t n, struct psrp_connect_req *out);

/* Append one whole fragment (start and end) holding the message msg. */
struct buf;
void psrp_put_fragment(struct buf *out, uint64_t object_id, const unsigned char *msg, size_t len);
/* The same for a message to the client, of the pool rpid, whose body is xml. */
void psrp_put_message(struct buf *out, uint64_t object_id, uint32_t type,
    const unsigned char rpid[16], const char *xml);

enum oop_kind {
	OOP_DATA, OOP_DATA_ACK, OOP_COMMAND, OOP_COMMAND_ACK,
	OOP_SIGNAL, OOP_SIGNAL_ACK, OOP_CLOSE, OOP_CLOSE_ACK,
};

/* One out-of-process packet: a line such as <DataAck PSGuid='...' />. */
struct oop_packet {
	int kind;
	char guid[37];
	bool prompt_response;           /* <Data Stream='PromptResponse'> */
	const char *data;               /* base64 text of a Data packet */
	size_t data_len;
};

int oop_parse(const char *line, size_t len, struct oop_packet *out);

/* Remove white space from base64 text in place and check it; -EINVAL if not base64. */
int psrp_b64_compact(char *s);
/* Decode WinRM's XPRESS-framed stream data given as base64; NULL if malformed. */
char *psrp_xpress_b64(const char *b64);

#endif
