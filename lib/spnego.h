/*
 * spnego.h - SPNEGO (RFC 4178) token parsing and building, DER only.
 *
 * Runs in the worker, on bytes straight from the Authorization header.  It
 * only frames: the NTLM or Kerberos token inside is handed on as a pointer
 * into the input, and the mechListMIC is checked by the mechanism
 * (ntlm_verify_in) over mech_types exactly as received.
 *
 * Errors: 0 or a negative errno, -EINVAL for anything malformed.
 */
#ifndef WINRMD_SPNEGO_H
#define WINRMD_SPNEGO_H

#include <stdbool.h>
#include <stddef.h>

#include "ntlm.h"
#include "util.h"

/*
 * Limits.  A token comes out of one Authorization header, so it is never
 * bigger than an NTLM message can be; the grammar has a fixed depth (the
 * parser does not recurse), and clients offer two to four mechanisms.
 */
#define SPNEGO_MAX_TOKEN    NTLM_MAX_MSG
#define SPNEGO_MAX_MECHS    16
#define SPNEGO_MAX_MIC      64          /* NTLM's is 16; Kerberos' about 28 */

enum { SPNEGO_INIT = 1, SPNEGO_RESP = 2 };

/* NegState values (RFC 4178 4.2.2). */
enum {
	SPNEGO_ACCEPT_COMPLETED = 0,
	SPNEGO_ACCEPT_INCOMPLETE = 1,
	SPNEGO_REJECT = 2,
	SPNEGO_REQUEST_MIC = 3,
};

/* Pointers point into the parsed token. */
struct spnego_tok {
	int kind;                               /* SPNEGO_INIT or SPNEGO_RESP */
	/* NegTokenInit: the DER MechTypeList (SEQUENCE header included), as
	 * the mechListMIC covers it. */
	const unsigned char *mech_types;
	size_t mech_types_len;
	bool mech_ntlm_first, mech_krb5_first, offers_ntlm, offers_krb5;
	const unsigned char *mech_token;        /* mechToken / responseToken */
	size_t mech_token_len;
	const unsigned char *mic;               /* mechListMIC contents */
	size_t mic_len;
	int neg_state;                          /* NegTokenResp; -1 if absent */
	const unsigned char *supported_mech;    /* OID contents, no tag/length */
	size_t supported_mech_len;
};

/*
 * Parse a client token: a GSS-API InitialContextToken ([APPLICATION 0],
 * OID 1.3.6.1.5.5.2) around a NegTokenInit, or a bare NegTokenResp.  DER is
 * enforced: definite minimal lengths, no trailing bytes, fields in order.
 * Kerberos is recognised under 1.2.840.113554.1.2.2 and Microsoft's
 * 1.2.840.48018.1.2.2, NTLM under 1.3.6.1.4.1.311.2.2.10.
 */
int spnego_parse(const unsigned char *t, size_t n, struct spnego_tok *out);

/*
 * Append a NegTokenResp to out.  neg_state -1 omits negState;
 * with_ntlm_mech adds supportedMech = NTLM (the first reply); resp_tok and
 * mic may be NULL.
 */
int spnego_build_resp(int neg_state, bool with_ntlm_mech, const unsigned char *resp_tok,
    size_t rl, const unsigned char *mic, size_t ml, struct buf *out);

/* The token is SPNEGO (InitialContextToken with the SPNEGO OID, or a
 * NegTokenResp), as opposed to raw NTLM or a raw Kerberos token. */
bool spnego_looks_like(const unsigned char *t, size_t n);

#endif
