/*
 * ntlm.h - NTLMv2 (MS-NLMP) for the acceptor side: message parsing and
 * building, proof and MIC verification, and session security (sealing).
 *
 * Split by process: the worker parses the NEGOTIATE and AUTHENTICATE
 * messages it read from the network, builds the CHALLENGE and, once a login
 * succeeded, seals and unseals messages (struct ntlm_sec).  The monitor
 * (root) only verifies: it takes the already-parsed fields, the user's NT
 * hash and the server challenge, and answers with the exported session key
 * or -EACCES.  Nothing in the verification path parses network framing.
 *
 * Errors: 0 or a negative errno; -EINVAL for malformed input or a client
 * asking for something we refuse (LM, NTLMv1, no extended session security),
 * -EACCES for a failed verification, -EIO when OpenSSL fails internally.
 *
 * Only NTLMv2 with extended session security is ever accepted.  All
 * primitives (MD4, MD5, HMAC-MD5, RC4) come from OpenSSL; MD4 and RC4 need
 * its legacy provider, loaded by ntlm_crypto_init().
 */
#ifndef WINRMD_NTLM_H
#define WINRMD_NTLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"
#include "wlimits.h"

/*
 * Limits.  An NTLM message arrives base64-encoded in one Authorization
 * header of at most AUTH_MAX_HEADER characters, so it can never decode to
 * more than NTLM_MAX_MSG bytes; anything bigger is refused before parsing.
 * Names are bounded like Linux/AD account names (AUTH_MAX_USER bytes of
 * UTF-8); an SPN ("HTTP/host.example.com") gets more room.
 */
#define NTLM_MAX_MSG        (AUTH_MAX_HEADER / 4 * 3)
#define NTLM_MAX_NAME       AUTH_MAX_USER       /* user, domain, workstation, our names */
#define NTLM_MAX_SPN        512                 /* MsvAvTargetName, UTF-8 bytes */
#define NTLM_MAX_AV_PAIRS   64                  /* Windows sends about 10 */
#define NTLM_MAX_PASSWORD   AUTH_MAX_PASSWORD   /* UTF-8 bytes hashed by ntlm_nt_hash */

/* NegotiateFlags (MS-NLMP 2.2.2.5). */
#define NTLMSSP_NEGOTIATE_UNICODE                  0x00000001u
#define NTLMSSP_NEGOTIATE_OEM                      0x00000002u
#define NTLMSSP_REQUEST_TARGET                     0x00000004u
#define NTLMSSP_NEGOTIATE_SIGN                     0x00000010u
#define NTLMSSP_NEGOTIATE_SEAL                     0x00000020u
#define NTLMSSP_NEGOTIATE_DATAGRAM                 0x00000040u
#define NTLMSSP_NEGOTIATE_LM_KEY                   0x00000080u
#define NTLMSSP_NEGOTIATE_NTLM                     0x00000200u
#define NTLMSSP_NEGOTIATE_ANONYMOUS                0x00000800u
#define NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED      0x00001000u
#define NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED 0x00002000u
#define NTLMSSP_NEGOTIATE_ALWAYS_SIGN              0x00008000u
#define NTLMSSP_TARGET_TYPE_DOMAIN                 0x00010000u
#define NTLMSSP_TARGET_TYPE_SERVER                 0x00020000u
#define NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY 0x00080000u
#define NTLMSSP_NEGOTIATE_IDENTIFY                 0x00100000u
#define NTLMSSP_REQUEST_NON_NT_SESSION_KEY         0x00400000u
#define NTLMSSP_NEGOTIATE_TARGET_INFO              0x00800000u
#define NTLMSSP_NEGOTIATE_VERSION                  0x02000000u
#define NTLMSSP_NEGOTIATE_128                      0x20000000u
#define NTLMSSP_NEGOTIATE_KEY_EXCH                 0x40000000u
#define NTLMSSP_NEGOTIATE_56                       0x80000000u

/* Load OpenSSL's legacy (MD4, RC4) and default providers and fetch the
 * algorithms once.  Call before dropping privileges or entering a sandbox
 * that hides the provider modules; -EOPNOTSUPP if MD4 or RC4 is missing.
 * Every other function returns -EIO if this was not done. */
int ntlm_crypto_init(void);

/* NT hash: MD4(UTF-16LE(password)).  -EINVAL for invalid UTF-8 or a
 * password longer than NTLM_MAX_PASSWORD bytes; out is zeroed then. */
int ntlm_nt_hash(const char *password, unsigned char out[16]);

/* "NTLMSSP\0" prefix: the token is raw NTLM, not SPNEGO or Kerberos. */
bool ntlm_looks_like(const unsigned char *t, size_t n);

/* ---- worker: messages ------------------------------------------------- */

/* NEGOTIATE_MESSAGE: check the framing and return the client's flags. */
int ntlm_parse_negotiate(const unsigned char *m, size_t n, uint32_t *flags);

/*
 * CHALLENGE_MESSAGE for a client that sent client_flags.  Refuses (-EINVAL)
 * a client that does not offer extended session security or a character
 * set.  Always answers UNICODE, NTLM, TARGET_INFO and REQUEST_TARGET, and
 * mirrors SIGN/SEAL/KEY_EXCH/128/56/VERSION/ALWAYS_SIGN when offered.
 * nb_domain and nb_computer are required (MS-NLMP makes their AV pairs
 * mandatory); the DNS names may be NULL or "".  filetime (100 ns since
 * 1601) goes into MsvAvTimestamp, which obliges clients to send a MIC.
 * The message is appended to out; *negotiated_flags is what we sent.
 */
int ntlm_build_challenge(uint32_t client_flags, const char *nb_domain,
    const char *nb_computer, const char *dns_domain, const char *dns_computer,
    uint64_t filetime, const unsigned char server_challenge[8], struct buf *out,
    uint32_t *negotiated_flags);

/* A parsed AUTHENTICATE_MESSAGE; pointers point into the message. */
struct ntlm_auth {
	uint32_t flags;
	char user[NTLM_MAX_NAME + 1];           /* UTF-8, never empty */
	char domain[NTLM_MAX_NAME + 1];         /* UTF-8, may be empty */
	char workstation[NTLM_MAX_NAME + 1];    /* UTF-8, may be empty */
	const unsigned char *nt, *lm, *esk;     /* NULL when the length is 0 */
	size_t nt_len, lm_len, esk_len;
	size_t mic_offset;                      /* 0 = no MIC */
	/* From the AV pairs inside the NTLMv2 response (signed by NTProofStr). */
	uint32_t av_flags;                      /* MsvAvFlags, 0 if absent */
	bool av_mic_present;                    /* MsvAvFlags & 0x2 */
	bool av_has_cbt;                        /* MsvAvChannelBindings present */
	unsigned char av_cbt[16];               /* all zero = client had none */
	bool av_has_timestamp;
	uint64_t av_timestamp;                  /* MsvAvTimestamp (FILETIME) */
	bool av_target_name;                    /* MsvAvTargetName present */
	char target_name[NTLM_MAX_SPN + 1];     /* its UTF-8 value, may be empty */
	unsigned char client_challenge[8];
	uint64_t client_time;                   /* NTLMv2_CLIENT_CHALLENGE.TimeStamp */
};

/*
 * Parse and bounds-check an AUTHENTICATE_MESSAGE.  Refuses anonymous or
 * empty user names, OEM strings, a missing ESS flag, NT responses that are
 * not NTLMv2 (shorter than 16+28 bytes, wrong RespType), malformed AV pairs,
 * a KEY_EXCH message whose EncryptedRandomSessionKey is not 16 bytes, and a
 * MIC announced in the AV pairs without room for it in the header.  The
 * caller should also run ntlm_check_flags and, since our CHALLENGE carries a
 * timestamp, insist on av_mic_present.
 */
int ntlm_parse_authenticate(const unsigned char *m, size_t n, struct ntlm_auth *out);

/*
 * The AUTHENTICATE flags pick the session-security options; they must not
 * claim SIGN/SEAL/KEY_EXCH/128/56/ESS that the CHALLENGE did not offer, and
 * must keep ESS and UNICODE.  -EINVAL otherwise.
 */
int ntlm_check_flags(uint32_t challenge_flags, uint32_t auth_flags);

/* ---- monitor: verification -------------------------------------------- */

/*
 * Verify an NTLMv2 response and derive the exported session key.
 * user/domain are the UTF-8 names from the AUTHENTICATE message (NTOWFv2
 * uses UPPER(user) and the domain exactly as sent).  As MS-NLMP 3.2.5.1.2
 * says servers SHOULD, a proof computed with an empty UserDom is accepted
 * too when the sent domain was not empty.  flags are the AUTHENTICATE
 * flags: with KEY_EXCH and SIGN or SEAL the key is RC4K(KXKEY, esk), else
 * the session base key.  0, -EACCES (wrong proof) or -EINVAL.
 * exported_key is zeroed on any failure.
 */
int ntlm_verify_v2(const unsigned char nt_hash[16], const char *user, const char *domain,
    const unsigned char server_challenge[8], const unsigned char *nt, size_t nt_len,
    const unsigned char *esk, size_t esk_len, uint32_t flags, unsigned char exported_key[16]);

/* MIC = HMAC-MD5(exported_key, NEGOTIATE || CHALLENGE || AUTHENTICATE with
 * the 16 MIC bytes zeroed).  0, -EACCES or -EINVAL. */
int ntlm_verify_mic(const unsigned char exported_key[16], const unsigned char *neg, size_t nl,
    const unsigned char *chal, size_t cl, const unsigned char *auth, size_t al,
    size_t mic_offset);

/* MD5 of a gss_channel_bindings_struct with empty addresses and the given
 * application data ("tls-server-end-point:" || certificate hash). */
void ntlm_cbt_hash(const unsigned char *app_data, size_t n, unsigned char out[16]);

/* ---- worker: session security (MS-NLMP 3.4, ESS only) ------------------ */

/* Acceptor role: "in" = client-to-server keys, "out" = server-to-client. */
struct ntlm_sec {
	uint32_t flags;
	unsigned char sign_in[16], sign_out[16], seal_in[16], seal_out[16];
	void *rc4_in, *rc4_out;                 /* EVP_CIPHER_CTX */
	uint32_t seq_in, seq_out;
	bool dead;                              /* a check failed: refuse everything */
};

/* Derive the four keys and RC4 handles.  flags are the negotiated
 * (AUTHENTICATE) flags; ESS and SIGN are required (-EINVAL). */
int ntlm_sec_init(struct ntlm_sec *s, const unsigned char exported_key[16], uint32_t flags);

/*
 * Decrypt in place and check the 16-byte signature against the expected
 * incoming sequence number.  Needs SEAL.  On -EACCES the data is zeroed and
 * the context is dead: every later call fails.  The RC4 keystream has
 * already moved past the bad message and cannot be trusted to line up with
 * the peer's again, and keeping the state unchanged instead would let the
 * genuine message (or a replay) be retried.  A dead context tells the
 * caller to drop the connection and make the client authenticate again.
 */
int ntlm_unseal(struct ntlm_sec *s, unsigned char *data, size_t len, const unsigned char sig[16]);
/* Encrypt in place and sign with the outgoing sequence number. */
int ntlm_seal(struct ntlm_sec *s, unsigned char *data, size_t len, unsigned char sig[16]);

/* GetMIC/VerifyMIC without sealing, for the SPNEGO mechListMIC: verify the
 * client's MIC with the incoming keys (same failure rule as ntlm_unseal),
 * or produce ours with the outgoing keys. */
int ntlm_verify_in(struct ntlm_sec *s, const unsigned char *data, size_t len,
    const unsigned char sig[16]);
int ntlm_sign_out(struct ntlm_sec *s, const unsigned char *data, size_t len,
    unsigned char sig[16]);

/* Re-key one RC4 handle from its sealing key, keeping the sequence number:
 * what pyspnego (and SSPI) do right after the mechListMIC. */
void ntlm_sec_reset_rc4(struct ntlm_sec *s, bool incoming);

/* Free the RC4 handles and wipe all keys. */
void ntlm_sec_free(struct ntlm_sec *s);

#endif
