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
#define PSRP_RUNSPACEPOOL_INIT_DATA 0x0002100Bu
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
/* PipelineState from a PIPELINE_STATE message, or -1. */
int psrp_pipeline_state(const unsigned char *msg, size_t n);

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
