/*
 * ntlm.c - NTLMv2 acceptor (MS-NLMP): parsing, CHALLENGE building and
 * session security run in the worker (user winrmd, network bytes);
 * ntlm_verify_v2/ntlm_verify_mic run in the monitor (root), which sees only
 * fields the worker already extracted plus the user's NT hash.
 *
 * The parsers and the CHALLENGE builder go through the bytes_ cursor
 * (bytes.h), so every offset and length from a message is checked against
 * the message before use.  Secrets (hashes, keys, UTF-16 passwords) live in fixed
 * buffers that are wiped before return.  Crypto is OpenSSL only.
 *
 * Just under 1,000 lines on purpose: MS-NLMP's messages, verification and
 * session security share its key derivations and RC4/HMAC wrappers, which
 * stay private to this file rather than becoming an API of their own.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include "bytes.h"
#include "ntlm.h"

#define NTLM_SIG_LEN        8
#define NTLM_NEG_HDR        32          /* through WorkstationFields */
#define NTLM_CHAL_HDR       56          /* through Version */
#define NTLM_AUTH_HDR       64          /* through NegotiateFlags */
#define NTLM_AUTH_MIC_OFF   72          /* after the 8-byte Version */
#define NTLM_AUTH_MIC_END   88
#define NTLMV2_BLOB_HDR     28          /* NTLMv2_CLIENT_CHALLENGE before AvPairs */
#define NTLMV2_MIN_NT       (16 + NTLMV2_BLOB_HDR)

/* AV_PAIR ids (MS-NLMP 2.2.2.1). */
enum {
	AV_EOL = 0, AV_NB_COMPUTER = 1, AV_NB_DOMAIN = 2, AV_DNS_COMPUTER = 3,
	AV_DNS_DOMAIN = 4, AV_FLAGS = 6, AV_TIMESTAMP = 7, AV_TARGET_NAME = 9,
	AV_CHANNEL_BINDINGS = 10,
};
#define AV_FLAG_MIC 0x2u

static const unsigned char ntlm_signature[NTLM_SIG_LEN] = "NTLMSSP";

/* Sent in our CHALLENGE's Version field: Windows Server 2019 (10.0.17763),
 * NTLMSSP_REVISION_W2K3.  Clients only log it. */
static const unsigned char ntlm_version[8] = { 10, 0, 0x63, 0x45, 0, 0, 0, 0x0f };

static EVP_MD *md_md4, *md_md5;
static EVP_CIPHER *ciph_rc4;
static EVP_MAC *mac_hmac;

/* ---- crypto wrappers ---------------------------------------------------- */

int ntlm_crypto_init(void)
{
	static OSSL_PROVIDER *legacy, *deflt;

	if (md_md4 && md_md5 && ciph_rc4 && mac_hmac)
		return 0;
	/* Loading any provider explicitly stops OpenSSL from loading "default"
	 * on its own, so both are loaded here. */
	if (!legacy)
		legacy = OSSL_PROVIDER_load(NULL, "legacy");
	if (!deflt)
		deflt = OSSL_PROVIDER_load(NULL, "default");
	if (!legacy || !deflt)
		return -EOPNOTSUPP;
	if (!md_md4)
		md_md4 = EVP_MD_fetch(NULL, "MD4", NULL);
	if (!md_md5)
		md_md5 = EVP_MD_fetch(NULL, "MD5", NULL);
	if (!ciph_rc4)
		ciph_rc4 = EVP_CIPHER_fetch(NULL, "RC4", NULL);
	if (!mac_hmac)
		mac_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!md_md4 || !md_md5 || !ciph_rc4 || !mac_hmac)
		return -EOPNOTSUPP;
	return 0;
}

static bool crypto_ready(void)
{
	return md_md4 && md_md5 && ciph_rc4 && mac_hmac;
}

struct part {
	const unsigned char *p;
	size_t n;
};

static int digest_parts(EVP_MD *md, const struct part *parts, size_t np, unsigned char out[16])
{
	EVP_MD_CTX *ctx;
	unsigned int olen = 0;
	int ok;

	if (!crypto_ready())
		return -EIO;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -EIO;
	ok = EVP_DigestInit_ex2(ctx, md, NULL);
	for (size_t i = 0; ok && i < np; i++)
		ok = EVP_DigestUpdate(ctx, parts[i].p, parts[i].n);
	ok = ok && EVP_DigestFinal_ex(ctx, out, &olen) && olen == 16;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		wipe(out, 16);
		return -EIO;
	}
	return 0;
}

static int hmac_md5_parts(const unsigned char key[16], const struct part *parts, size_t np,
    unsigned char out[16])
{
	OSSL_PARAM params[2];
	EVP_MAC_CTX *ctx;
	size_t olen = 0;
	int ok;

	if (!crypto_ready())
		return -EIO;
	ctx = EVP_MAC_CTX_new(mac_hmac);
	if (!ctx)
		return -EIO;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"MD5", 0);
	params[1] = OSSL_PARAM_construct_end();
	ok = EVP_MAC_init(ctx, key, 16, params);
	for (size_t i = 0; ok && i < np; i++)
		ok = EVP_MAC_update(ctx, parts[i].p, parts[i].n);
	ok = ok && EVP_MAC_final(ctx, out, &olen, 16) && olen == 16;
	EVP_MAC_CTX_free(ctx);
	if (!ok) {
		wipe(out, 16);
		return -EIO;
	}
	return 0;
}

static int hmac_md5(const unsigned char key[16], const unsigned char *a, size_t an,
    const unsigned char *b, size_t bn, unsigned char out[16])
{
	struct part parts[2] = { { a, an }, { b, bn } };
	return hmac_md5_parts(key, parts, 2, out);
}

/* RC4 on a live handle; EVP takes int lengths, so long inputs go in slices. */
static int rc4_update(EVP_CIPHER_CTX *ctx, unsigned char *data, size_t len)
{
	while (len) {
		int chunk = len > (size_t)INT_MAX / 2 ? INT_MAX / 2 : (int)len, outl = 0;
		if (!EVP_EncryptUpdate(ctx, data, &outl, data, chunk) || outl != chunk)
			return -EIO;
		data += chunk;
		len -= (size_t)chunk;
	}
	return 0;
}

static EVP_CIPHER_CTX *rc4_new(const unsigned char key[16])
{
	EVP_CIPHER_CTX *ctx;

	if (!crypto_ready())
		return NULL;
	ctx = EVP_CIPHER_CTX_new();
	if (ctx && !EVP_EncryptInit_ex2(ctx, ciph_rc4, key, NULL, NULL)) {
		EVP_CIPHER_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* RC4K(key, 16 bytes): a one-time RC4 instance (MS-NLMP 3.1.5.1). */
static int rc4k16(const unsigned char key[16], const unsigned char in[16], unsigned char out[16])
{
	EVP_CIPHER_CTX *ctx = rc4_new(key);
	int r;

	if (!ctx)
		return -EIO;
	memcpy(out, in, 16);
	r = rc4_update(ctx, out, 16);
	EVP_CIPHER_CTX_free(ctx);
	if (r < 0)
		wipe(out, 16);
	return r;
}

/* ---- text helpers ------------------------------------------------------- */

/*
 * Upper-casing for NTOWFv2's UPPER(User).  Windows uses its own fixed table
 * (RtlUpcaseUnicodeChar), not a locale, so neither do we: ASCII, Latin-1,
 * Latin Extended-A, Greek and Cyrillic cover the account names Linux tools
 * allow; other scripts have no case or are left alone.
 */
static uint32_t ucs_upper(uint32_t c)
{
	if (c >= 'a' && c <= 'z')
		return c - 0x20;
	if (c < 0x80)
		return c;
	if (c >= 0xe0 && c <= 0xfe && c != 0xf7)
		return c - 0x20;
	if (c == 0xff)
		return 0x178;
	if (c == 0xb5)
		return 0x39c;
	if ((c >= 0x100 && c <= 0x12f) || (c >= 0x132 && c <= 0x137) || (c >= 0x14a && c <= 0x177))
		return c & ~1u;
	if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
		return (c & 1u) ? c : c - 1;
	if (c >= 0x3b1 && c <= 0x3cb && c != 0x3c2)
		return c - 0x20;
	if (c >= 0x430 && c <= 0x44f)
		return c - 0x20;
	if (c >= 0x450 && c <= 0x45f)
		return c - 0x50;
	return c;
}

/* Next code point of UTF-8 text; rejects overlongs, surrogates and > U+10FFFF. */
static int utf8_next(const unsigned char *s, size_t n, size_t *i, uint32_t *cp)
{
	unsigned char c = s[*i];
	uint32_t v, min;
	size_t k, len;

	if (c < 0x80) {
		*cp = c;
		(*i)++;
		return 0;
	}
	if ((c & 0xe0) == 0xc0) {
		len = 2; v = c & 0x1fu; min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3; v = c & 0x0fu; min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4; v = c & 0x07u; min = 0x10000;
	} else {
		return -EINVAL;
	}
	if (len > n - *i)
		return -EINVAL;
	for (k = 1; k < len; k++) {
		unsigned char cc = s[*i + k];
		if ((cc & 0xc0) != 0x80)
			return -EINVAL;
		v = v << 6 | (cc & 0x3fu);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return -EINVAL;
	*cp = v;
	*i += len;
	return 0;
}

/* UTF-8 -> UTF-16LE appended to w; -EINVAL if it does not fit. */
static int utf8_to_utf16le(const char *str, size_t n, bool upper, struct bytes_writer *w)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	uint32_t cp;

	while (i < n) {
		if (utf8_next(s, n, &i, &cp) < 0 || cp == 0)
			return -EINVAL;
		if (upper)
			cp = ucs_upper(cp);
		if (cp >= 0x10000) {
			cp -= 0x10000;
			bytes_put_u16le(w, (uint16_t)(0xd800 | (cp >> 10)));
			bytes_put_u16le(w, (uint16_t)(0xdc00 | (cp & 0x3ff)));
		} else {
			bytes_put_u16le(w, (uint16_t)cp);
		}
		if (w->bad)
			return -EINVAL;
	}
	return 0;
}

/* UTF-16LE from the wire -> NUL-terminated UTF-8 in out[cap].  Odd lengths,
 * unpaired surrogates, NULs and overflow are all malformed input. */
static int utf16le_to_utf8(struct bytes_reader in, char *out, size_t cap)
{
	struct bytes_writer w = bytes_writer(out, cap);

	if (bytes_left(&in) % 2)
		return -EINVAL;
	while (bytes_left(&in)) {
		uint32_t cp = bytes_u16le(&in);
		unsigned char enc[4];
		size_t el;

		if (cp >= 0xd800 && cp <= 0xdbff) {
			uint32_t lo = bytes_u16le(&in);
			if (in.bad || lo < 0xdc00 || lo > 0xdfff)
				return -EINVAL;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		} else if ((cp >= 0xdc00 && cp <= 0xdfff) || cp == 0) {
			return -EINVAL;
		}
		if (cp < 0x80) {
			enc[0] = (unsigned char)cp;
			el = 1;
		} else if (cp < 0x800) {
			enc[0] = (unsigned char)(0xc0 | cp >> 6);
			enc[1] = (unsigned char)(0x80 | (cp & 0x3f));
			el = 2;
		} else if (cp < 0x10000) {
			enc[0] = (unsigned char)(0xe0 | cp >> 12);
			enc[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			enc[2] = (unsigned char)(0x80 | (cp & 0x3f));
			el = 3;
		} else {
			enc[0] = (unsigned char)(0xf0 | cp >> 18);
			enc[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
			enc[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			enc[3] = (unsigned char)(0x80 | (cp & 0x3f));
			el = 4;
		}
		bytes_put(&w, enc, el);
		if (w.bad)
			return -EINVAL;
	}
	bytes_put_u8(&w, '\0');
	return w.bad ? -EINVAL : 0;
}

/* ---- hashes -------------------------------------------------------------- */

int ntlm_nt_hash(const char *password, unsigned char out[16])
{
	/* A UTF-8 byte never yields more than one UTF-16 code unit. */
	unsigned char u16[2 * NTLM_MAX_PASSWORD];
	struct bytes_writer w = bytes_writer(u16, sizeof u16);
	size_t plen;
	struct part p;
	int r;

	memset(out, 0, 16);
	if (!password)
		return -EINVAL;
	plen = strlen(password);
	if (plen > NTLM_MAX_PASSWORD)
		return -EINVAL;
	r = utf8_to_utf16le(password, plen, false, &w);
	if (r == 0) {
		p.p = u16;
		p.n = w.off;
		r = digest_parts(md_md4, &p, 1, out);
	}
	wipe(u16, sizeof u16);
	if (r < 0)
		wipe(out, 16);
	return r;
}

bool ntlm_looks_like(const unsigned char *t, size_t n)
{
	return t && n >= NTLM_SIG_LEN && memcmp(t, ntlm_signature, NTLM_SIG_LEN) == 0;
}

/* ---- NEGOTIATE / CHALLENGE ---------------------------------------------- */

/* Signature and MessageType; leaves msg after them. */
static bool header_ok(struct bytes_reader *msg, size_t min, uint32_t type)
{
	const unsigned char *sig;

	if (msg->len < min || msg->len > NTLM_MAX_MSG)
		return false;
	sig = bytes_take(msg, NTLM_SIG_LEN);
	return sig && memcmp(sig, ntlm_signature, NTLM_SIG_LEN) == 0 &&
	    bytes_u32le(msg) == type && !msg->bad;
}

/* Len and Offset of the field descriptor at `at`; MaxLen is never used. */
static int field_desc(const struct bytes_reader *msg, size_t at, size_t *len, size_t *off)
{
	struct bytes_reader r = *msg;

	bytes_at(&r, at);
	*len = bytes_u16le(&r);
	bytes_skip(&r, 2);
	*off = bytes_u32le(&r);
	return r.bad ? -EINVAL : 0;
}

/*
 * The payload field whose descriptor is at `at`.  An empty field's offset
 * is not looked at: MS-NLMP says to ignore it and clients fill it with
 * anything.  A non-empty one must lie in the payload, after the header.
 * On error, and for an empty field, val is empty with a NULL pointer.
 */
static int field(const struct bytes_reader *msg, size_t at, size_t hdr, struct bytes_reader *val)
{
	struct bytes_reader r = *msg;
	size_t l, off;

	*val = bytes_reader(NULL, 0);
	if (field_desc(msg, at, &l, &off) < 0)
		return -EINVAL;
	if (l == 0)
		return 0;
	if (off < hdr)
		return -EINVAL;
	bytes_at(&r, off);
	*val = bytes_sub(&r, l);
	if (r.bad) {
		*val = bytes_reader(NULL, 0);
		return -EINVAL;
	}
	return 0;
}

/* The same, kept as pointer and length in struct ntlm_auth. */
static int field_ptr(const struct bytes_reader *msg, size_t at, const unsigned char **p,
    size_t *len)
{
	struct bytes_reader v;
	int r = field(msg, at, NTLM_AUTH_HDR, &v);

	*p = v.p;
	*len = v.len;
	return r;
}

int ntlm_parse_negotiate(const unsigned char *m, size_t n, uint32_t *flags)
{
	struct bytes_reader msg = bytes_reader(m, n), v;

	/* 16 bytes (no name fields) is what some old clients send. */
	if (!header_ok(&msg, 16, 1))
		return -EINVAL;
	*flags = bytes_u32le(&msg);
	if (n >= NTLM_NEG_HDR) {
		if ((*flags & NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED) &&
		    field(&msg, 16, NTLM_NEG_HDR, &v) < 0)
			return -EINVAL;
		if ((*flags & NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED) &&
		    field(&msg, 24, NTLM_NEG_HDR, &v) < 0)
			return -EINVAL;
	}
	return 0;
}

/* Append one AV pair holding a UTF-8 name as UTF-16LE. */
static int av_name(struct bytes_writer *w, uint16_t id, const char *name)
{
	size_t nl = strlen(name), start;
	unsigned char *hdr;
	struct bytes_writer h;

	if (nl > NTLM_MAX_NAME)
		return -EINVAL;
	/* AvLen is known only once the name is converted. */
	hdr = bytes_reserve(w, 4);
	start = w->off;
	if (!hdr || utf8_to_utf16le(name, nl, false, w) < 0)
		return -EINVAL;
	h = bytes_writer(hdr, 4);
	bytes_put_u16le(&h, id);
	bytes_put_u16le(&h, (uint16_t)(w->off - start));
	return 0;
}

int ntlm_build_challenge(uint32_t client_flags, const char *nb_domain,
    const char *nb_computer, const char *dns_domain, const char *dns_computer,
    uint64_t filetime, const unsigned char server_challenge[8], struct buf *out,
    uint32_t *negotiated_flags)
{
	/* Header + TargetName + five names + timestamp + EOL, all bounded. */
	unsigned char b[NTLM_CHAL_HDR + 5 * (4 + 2 * NTLM_MAX_NAME) + 12 + 4];
	/* The payload goes in first: the header holds its lengths. */
	struct bytes_writer pw = bytes_writer(b + NTLM_CHAL_HDR, sizeof b - NTLM_CHAL_HDR);
	struct bytes_writer hw = bytes_writer(b, NTLM_CHAL_HDR);
	const uint32_t mirror = NTLMSSP_NEGOTIATE_SIGN | NTLMSSP_NEGOTIATE_SEAL |
	    NTLMSSP_NEGOTIATE_KEY_EXCH | NTLMSSP_NEGOTIATE_128 | NTLMSSP_NEGOTIATE_56 |
	    NTLMSSP_NEGOTIATE_VERSION | NTLMSSP_NEGOTIATE_ALWAYS_SIGN;
	uint32_t f;
	size_t tn_len, ti_off;
	int r;

	if (!nb_domain || !nb_computer || !*nb_domain || !*nb_computer || !out ||
	    !server_challenge)
		return -EINVAL;
	if (!(client_flags & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY))
		return -EINVAL;
	/*
	 * A client must name a character set.  ntlm-auth (requests_ntlm, thus
	 * pywinrm) offers OEM only yet follows whatever the CHALLENGE says, as
	 * with Windows servers, so OEM-only clients are answered in UNICODE and
	 * ntlm_parse_authenticate then insists on UNICODE.
	 */
	if (!(client_flags & (NTLMSSP_NEGOTIATE_UNICODE | NTLMSSP_NEGOTIATE_OEM)))
		return -EINVAL;

	/* TARGET_INFO is forced: NTLMv2 cannot be computed without it. */
	f = (client_flags & mirror) | NTLMSSP_NEGOTIATE_UNICODE | NTLMSSP_REQUEST_TARGET |
	    NTLMSSP_NEGOTIATE_NTLM | NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY |
	    NTLMSSP_NEGOTIATE_TARGET_INFO;
	f |= str_ieq(nb_domain, nb_computer) ? NTLMSSP_TARGET_TYPE_SERVER : NTLMSSP_TARGET_TYPE_DOMAIN;

	/* Payload: TargetName, then TargetInfo. */
	if (strlen(nb_domain) > NTLM_MAX_NAME)
		return -EINVAL;
	r = utf8_to_utf16le(nb_domain, strlen(nb_domain), false, &pw);
	if (r < 0)
		return r;
	tn_len = pw.off;

	ti_off = pw.off;
	if ((r = av_name(&pw, AV_NB_DOMAIN, nb_domain)) < 0 ||
	    (r = av_name(&pw, AV_NB_COMPUTER, nb_computer)) < 0)
		return r;
	if (dns_domain && *dns_domain && (r = av_name(&pw, AV_DNS_DOMAIN, dns_domain)) < 0)
		return r;
	if (dns_computer && *dns_computer && (r = av_name(&pw, AV_DNS_COMPUTER, dns_computer)) < 0)
		return r;
	bytes_put_u16le(&pw, AV_TIMESTAMP);
	bytes_put_u16le(&pw, 8);
	bytes_put_u64le(&pw, filetime);
	bytes_put_u16le(&pw, AV_EOL);
	bytes_put_u16le(&pw, 0);

	bytes_put(&hw, ntlm_signature, NTLM_SIG_LEN);
	bytes_put_u32le(&hw, 2);                        /* MessageType */
	bytes_put_u16le(&hw, (uint16_t)tn_len);         /* TargetNameFields */
	bytes_put_u16le(&hw, (uint16_t)tn_len);
	bytes_put_u32le(&hw, NTLM_CHAL_HDR);
	bytes_put_u32le(&hw, f);
	bytes_put(&hw, server_challenge, 8);
	bytes_zero(&hw, 8);                             /* Reserved */
	bytes_put_u16le(&hw, (uint16_t)(pw.off - ti_off)); /* TargetInfoFields */
	bytes_put_u16le(&hw, (uint16_t)(pw.off - ti_off));
	bytes_put_u32le(&hw, (uint32_t)(NTLM_CHAL_HDR + ti_off));
	if (f & NTLMSSP_NEGOTIATE_VERSION)
		bytes_put(&hw, ntlm_version, 8);
	else
		bytes_zero(&hw, 8);
	if (pw.bad || hw.bad || hw.off != NTLM_CHAL_HDR)
		return -EINVAL;

	r = buf_append(out, b, NTLM_CHAL_HDR + pw.off);
	if (r < 0)
		return r;
	if (negotiated_flags)
		*negotiated_flags = f;
	return 0;
}

/* ---- AUTHENTICATE -------------------------------------------------------- */

/* The AV pairs of an NTLMv2_CLIENT_CHALLENGE (from nt + 44 on). */
static int parse_av_pairs(struct bytes_reader p, struct ntlm_auth *a)
{
	bool seen_flags = false, seen_eol = false;

	for (unsigned count = 0; !seen_eol; count++) {
		struct bytes_reader v;
		uint16_t id, len;

		if (count >= NTLM_MAX_AV_PAIRS)
			return -EINVAL;
		id = bytes_u16le(&p);
		len = bytes_u16le(&p);
		v = bytes_sub(&p, len);
		if (p.bad)
			return -EINVAL;
		switch (id) {
		case AV_EOL:
			if (len != 0)
				return -EINVAL;
			seen_eol = true;
			break;
		case AV_FLAGS:
			if (len != 4 || seen_flags)
				return -EINVAL;
			seen_flags = true;
			a->av_flags = bytes_u32le(&v);
			a->av_mic_present = (a->av_flags & AV_FLAG_MIC) != 0;
			break;
		case AV_TIMESTAMP:
			if (len != 8 || a->av_has_timestamp)
				return -EINVAL;
			a->av_has_timestamp = true;
			a->av_timestamp = bytes_u64le(&v);
			break;
		case AV_CHANNEL_BINDINGS:
			if (len != 16 || a->av_has_cbt)
				return -EINVAL;
			a->av_has_cbt = true;
			bytes_copy(&v, a->av_cbt, 16);
			break;
		case AV_TARGET_NAME:
			if (a->av_target_name)
				return -EINVAL;
			a->av_target_name = true;
			if (len && utf16le_to_utf8(v, a->target_name, sizeof a->target_name) < 0)
				return -EINVAL;
			break;
		default:
			break;                  /* names, MsvAvSingleHost, ...: unused */
		}
	}
	return 0;
}

static int name_field(const struct bytes_reader *msg, size_t at, char *out, size_t cap)
{
	struct bytes_reader v;

	if (field(msg, at, NTLM_AUTH_HDR, &v) < 0)
		return -EINVAL;
	out[0] = '\0';
	return bytes_left(&v) ? utf16le_to_utf8(v, out, cap) : 0;
}

int ntlm_parse_authenticate(const unsigned char *m, size_t n, struct ntlm_auth *out)
{
	struct ntlm_auth *a = out;
	struct bytes_reader msg = bytes_reader(m, n), r, blob;
	size_t min_off = SIZE_MAX;

	memset(a, 0, sizeof *a);
	r = msg;
	if (!header_ok(&r, NTLM_AUTH_HDR, 3))
		return -EINVAL;
	bytes_at(&r, 60);
	a->flags = bytes_u32le(&r);
	if (!(a->flags & NTLMSSP_NEGOTIATE_UNICODE) ||
	    !(a->flags & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY) ||
	    (a->flags & NTLMSSP_NEGOTIATE_ANONYMOUS))
		goto out;

	if (field_ptr(&msg, 12, &a->lm, &a->lm_len) < 0 ||
	    field_ptr(&msg, 20, &a->nt, &a->nt_len) < 0 ||
	    field_ptr(&msg, 52, &a->esk, &a->esk_len) < 0 ||
	    name_field(&msg, 28, a->domain, sizeof a->domain) < 0 ||
	    name_field(&msg, 36, a->user, sizeof a->user) < 0 ||
	    name_field(&msg, 44, a->workstation, sizeof a->workstation) < 0)
		goto out;
	if (!a->user[0])
		goto out;                       /* anonymous */

	/* NTLMv2 only: NTProofStr + NTLMv2_CLIENT_CHALLENGE with RespType 1. */
	if (a->nt_len < NTLMV2_MIN_NT)
		goto out;
	blob = bytes_reader(a->nt, a->nt_len);
	bytes_skip(&blob, 16);                          /* NTProofStr */
	if (bytes_u8(&blob) != 1 || bytes_u8(&blob) != 1) /* RespType, HiRespType */
		goto out;
	bytes_skip(&blob, 6);                           /* Reserved1, Reserved2 */
	a->client_time = bytes_u64le(&blob);
	bytes_copy(&blob, a->client_challenge, 8);
	bytes_skip(&blob, 4);                           /* Reserved3 */
	if (blob.bad || parse_av_pairs(blob, a) < 0)
		goto out;

	if ((a->flags & NTLMSSP_NEGOTIATE_KEY_EXCH) &&
	    (a->flags & (NTLMSSP_NEGOTIATE_SIGN | NTLMSSP_NEGOTIATE_SEAL)) && a->esk_len != 16)
		goto out;

	if (a->av_mic_present) {
		/* The MIC sits at 72; no payload may start before its end. */
		static const size_t fields[] = { 12, 20, 28, 36, 44, 52 };
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
			size_t l, off;
			if (field_desc(&msg, fields[i], &l, &off) < 0)
				goto out;
			if (l && off < min_off)
				min_off = off;
		}
		if (n < NTLM_AUTH_MIC_END || min_off < NTLM_AUTH_MIC_END)
			goto out;
		a->mic_offset = NTLM_AUTH_MIC_OFF;
	}
	return 0;
out:
	memset(a, 0, sizeof *a);
	return -EINVAL;
}

int ntlm_check_flags(uint32_t challenge_flags, uint32_t auth_flags)
{
	const uint32_t sec = NTLMSSP_NEGOTIATE_SIGN | NTLMSSP_NEGOTIATE_SEAL |
	    NTLMSSP_NEGOTIATE_KEY_EXCH | NTLMSSP_NEGOTIATE_128 | NTLMSSP_NEGOTIATE_56 |
	    NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY;

	if ((auth_flags & sec) & ~challenge_flags)
		return -EINVAL;
	if (!(auth_flags & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY) ||
	    !(auth_flags & NTLMSSP_NEGOTIATE_UNICODE))
		return -EINVAL;
	return 0;
}

/* ---- monitor: verification ---------------------------------------------- */

/* NTOWFv2 = HMAC-MD5(NT hash, UTF-16LE(UPPER(user) || domain)). */
static int ntowfv2(const unsigned char nt_hash[16], const char *user, const char *domain,
    unsigned char out[16])
{
	/* Each UTF-8 byte gives at most one UTF-16 code unit: room for both. */
	unsigned char u16[2 * 2 * NTLM_MAX_NAME];
	struct bytes_writer w = bytes_writer(u16, sizeof u16);
	size_t ul = strlen(user), dl = strlen(domain);
	int r = -EINVAL;

	if (ul == 0 || ul > NTLM_MAX_NAME || dl > NTLM_MAX_NAME)
		goto out;
	if (utf8_to_utf16le(user, ul, true, &w) < 0 || utf8_to_utf16le(domain, dl, false, &w) < 0)
		goto out;
	r = hmac_md5(nt_hash, u16, w.off, NULL, 0, out);
out:
	wipe(u16, sizeof u16);
	return r;
}

/* 0 and the session base key if nt carries a valid NTProofStr for this
 * NTOWFv2, -EACCES if not. */
static int check_proof(const unsigned char rk[16], const unsigned char server_challenge[8],
    const unsigned char *nt, size_t nt_len, unsigned char sbk[16])
{
	unsigned char proof[16];
	int r;

	r = hmac_md5(rk, server_challenge, 8, nt + 16, nt_len - 16, proof);
	if (r == 0 && !ct_equal(proof, nt, 16))
		r = -EACCES;
	if (r == 0)
		r = hmac_md5(rk, proof, 16, NULL, 0, sbk);
	wipe(proof, sizeof proof);
	return r;
}

int ntlm_verify_v2(const unsigned char nt_hash[16], const char *user, const char *domain,
    const unsigned char server_challenge[8], const unsigned char *nt, size_t nt_len,
    const unsigned char *esk, size_t esk_len, uint32_t flags, unsigned char exported_key[16])
{
	unsigned char rk[16], sbk[16];
	int r;

	memset(exported_key, 0, 16);
	if (!nt_hash || !user || !domain || !server_challenge || !nt ||
	    nt_len < NTLMV2_MIN_NT || nt_len > NTLM_MAX_MSG || nt[16] != 1 || nt[17] != 1)
		return -EINVAL;
	r = ntowfv2(nt_hash, user, domain, rk);
	if (r == 0)
		r = check_proof(rk, server_challenge, nt, nt_len, sbk);
	/* MS-NLMP 3.2.5.1.2: servers SHOULD accept clients that wrongly
	 * computed NTOWFv2 with an empty UserDom. */
	if (r == -EACCES && *domain) {
		r = ntowfv2(nt_hash, user, "", rk);
		if (r == 0)
			r = check_proof(rk, server_challenge, nt, nt_len, sbk);
	}
	/* NTLMv2: KXKEY is the session base key (MS-NLMP 3.4.5.1). */
	if (r == 0) {
		if ((flags & NTLMSSP_NEGOTIATE_KEY_EXCH) &&
		    (flags & (NTLMSSP_NEGOTIATE_SIGN | NTLMSSP_NEGOTIATE_SEAL))) {
			if (!esk || esk_len != 16)
				r = -EINVAL;
			else
				r = rc4k16(sbk, esk, exported_key);
		} else {
			memcpy(exported_key, sbk, 16);
		}
	}
	wipe(rk, sizeof rk);
	wipe(sbk, sizeof sbk);
	if (r < 0)
		wipe(exported_key, 16);
	return r;
}

int ntlm_verify_mic(const unsigned char exported_key[16], const unsigned char *neg, size_t nl,
    const unsigned char *chal, size_t cl, const unsigned char *auth, size_t al,
    size_t mic_offset)
{
	static const unsigned char zero[16];
	unsigned char mic[16];
	struct part parts[5];
	int r;

	if (!exported_key || !neg || !chal || !auth || nl > NTLM_MAX_MSG || cl > NTLM_MAX_MSG ||
	    al > NTLM_MAX_MSG || mic_offset < NTLM_AUTH_HDR || mic_offset > al || al - mic_offset < 16)
		return -EINVAL;
	/* Zeroing the field in a copy is the same as hashing around it. */
	parts[0] = (struct part){ neg, nl };
	parts[1] = (struct part){ chal, cl };
	parts[2] = (struct part){ auth, mic_offset };
	parts[3] = (struct part){ zero, 16 };
	parts[4] = (struct part){ auth + mic_offset + 16, al - mic_offset - 16 };
	r = hmac_md5_parts(exported_key, parts, 5, mic);
	if (r == 0 && !ct_equal(mic, auth + mic_offset, 16))
		r = -EACCES;
	wipe(mic, sizeof mic);
	return r;
}

void ntlm_cbt_hash(const unsigned char *app_data, size_t n, unsigned char out[16])
{
	unsigned char hdr[20];
	struct bytes_writer w = bytes_writer(hdr, sizeof hdr);
	struct part parts[2] = { { hdr, sizeof hdr }, { app_data, n } };

	if (n > UINT32_MAX) {
		memset(out, 0, 16);
		return;
	}
	bytes_zero(&w, 16);             /* initiator and acceptor addrtype, address */
	bytes_put_u32le(&w, (uint32_t)n);
	if (digest_parts(md_md5, parts, 2, out) < 0)
		memset(out, 0, 16);
}

/* ---- session security (MS-NLMP 3.4.4.2, 3.4.5) -------------------------- */

static const char magic_cli_sign[] = "session key to client-to-server signing key magic constant";
static const char magic_srv_sign[] = "session key to server-to-client signing key magic constant";
static const char magic_cli_seal[] = "session key to client-to-server sealing key magic constant";
static const char magic_srv_seal[] = "session key to server-to-client sealing key magic constant";

/* MD5(key || magic incl. its NUL), as SIGNKEY/SEALKEY define it. */
static int derive(const unsigned char *key, size_t kl, const char *magic, unsigned char out[16])
{
	struct part parts[2] = { { key, kl }, { (const unsigned char *)magic, strlen(magic) + 1 } };
	return digest_parts(md_md5, parts, 2, out);
}

int ntlm_sec_init(struct ntlm_sec *s, const unsigned char exported_key[16], uint32_t flags)
{
	/* SEALKEY weakens the key before hashing unless 128-bit was chosen. */
	size_t seal_len = (flags & NTLMSSP_NEGOTIATE_128) ? 16 : (flags & NTLMSSP_NEGOTIATE_56) ? 7 : 5;
	int r;

	memset(s, 0, sizeof *s);
	if (!(flags & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY) || !(flags & NTLMSSP_NEGOTIATE_SIGN))
		return -EINVAL;
	s->flags = flags;
	if ((r = derive(exported_key, 16, magic_cli_sign, s->sign_in)) < 0 ||
	    (r = derive(exported_key, 16, magic_srv_sign, s->sign_out)) < 0 ||
	    (r = derive(exported_key, seal_len, magic_cli_seal, s->seal_in)) < 0 ||
	    (r = derive(exported_key, seal_len, magic_srv_seal, s->seal_out)) < 0)
		goto out;
	s->rc4_in = rc4_new(s->seal_in);
	s->rc4_out = rc4_new(s->seal_out);
	if (!s->rc4_in || !s->rc4_out) {
		r = -EIO;
		goto out;
	}
	return 0;
out:
	ntlm_sec_free(s);
	return r;
}

/* MAC with ESS, before the optional RC4 of the checksum: Version 1,
 * HMAC-MD5(SignKey, SeqNum || msg)[0..7], SeqNum. */
static int mac_plain(const unsigned char key[16], uint32_t seq, const unsigned char *msg,
    size_t len, unsigned char sig[16])
{
	unsigned char seqb[4], full[16];
	struct bytes_writer w = bytes_writer(seqb, sizeof seqb);
	int r;

	bytes_put_u32le(&w, seq);
	r = hmac_md5(key, seqb, 4, msg, len, full);
	w = bytes_writer(sig, 16);
	bytes_put_u32le(&w, 1);
	bytes_put(&w, full, 8);
	bytes_put_u32le(&w, seq);
	wipe(full, sizeof full);
	return r;
}

static int kill_ctx(struct ntlm_sec *s, int r)
{
	s->dead = true;
	return r;
}

static bool usable(const struct ntlm_sec *s, const void *data, size_t len, const void *sig)
{
	return s && !s->dead && s->rc4_in && s->rc4_out && sig && (data || len == 0);
}

/*
 * Incoming side.  The sender ran RC4 over the message first and over the
 * checksum second, so the message (if sealed) is decrypted first.  Every
 * byte of the signature is compared (version, checksum, sequence number) in
 * one constant-time compare.
 */
static int check_in(struct ntlm_sec *s, unsigned char *data, size_t len, bool sealed,
    const unsigned char sig[16])
{
	unsigned char want[16];
	int r;

	if (!usable(s, data, len, sig))
		return -EACCES;
	if (sealed && !(s->flags & NTLMSSP_NEGOTIATE_SEAL))
		return -EINVAL;
	if (s->seq_in == UINT32_MAX)
		return kill_ctx(s, -EACCES);    /* the counter would wrap: replays */
	r = sealed ? rc4_update(s->rc4_in, data, len) : 0;
	if (r == 0)
		r = mac_plain(s->sign_in, s->seq_in, data, len, want);
	if (r == 0 && (s->flags & NTLMSSP_NEGOTIATE_KEY_EXCH))
		r = rc4_update(s->rc4_in, want + 4, 8);
	if (r == 0 && !ct_equal(want, sig, 16))
		r = -EACCES;
	wipe(want, sizeof want);
	if (r < 0) {
		if (sealed)
			wipe(data, len);        /* never hand out unauthenticated plaintext */
		return kill_ctx(s, r);
	}
	s->seq_in++;
	return 0;
}

int ntlm_unseal(struct ntlm_sec *s, unsigned char *data, size_t len, const unsigned char sig[16])
{
	return check_in(s, data, len, true, sig);
}

int ntlm_verify_in(struct ntlm_sec *s, const unsigned char *data, size_t len,
    const unsigned char sig[16])
{
	/* Not sealed: data is only read. */
	return check_in(s, (unsigned char *)data, len, false, sig);
}

/* Outgoing side: the checksum covers the plaintext, yet RC4 must run over
 * the message before the checksum, so hash first, then run the stream. */
static int sign_out(struct ntlm_sec *s, unsigned char *data, size_t len, bool seal,
    unsigned char sig[16])
{
	int r;

	if (!usable(s, data, len, sig))
		return -EACCES;
	if (seal && !(s->flags & NTLMSSP_NEGOTIATE_SEAL))
		return -EINVAL;
	if (s->seq_out == UINT32_MAX)
		return kill_ctx(s, -EOVERFLOW);
	r = mac_plain(s->sign_out, s->seq_out, data, len, sig);
	if (r == 0 && seal)
		r = rc4_update(s->rc4_out, data, len);
	if (r == 0 && (s->flags & NTLMSSP_NEGOTIATE_KEY_EXCH))
		r = rc4_update(s->rc4_out, sig + 4, 8);
	if (r < 0) {
		wipe(sig, 16);
		return kill_ctx(s, r);
	}
	s->seq_out++;
	return 0;
}

int ntlm_seal(struct ntlm_sec *s, unsigned char *data, size_t len, unsigned char sig[16])
{
	return sign_out(s, data, len, true, sig);
}

int ntlm_sign_out(struct ntlm_sec *s, const unsigned char *data, size_t len, unsigned char sig[16])
{
	/* Not sealing: data is only read. */
	return sign_out(s, (unsigned char *)data, len, false, sig);
}

void ntlm_sec_reset_rc4(struct ntlm_sec *s, bool incoming)
{
	void **h;

	if (!s || s->dead)
		return;
	h = incoming ? &s->rc4_in : &s->rc4_out;
	if (*h && !EVP_EncryptInit_ex2(*h, ciph_rc4, incoming ? s->seal_in : s->seal_out, NULL, NULL))
		s->dead = true;
}

void ntlm_sec_free(struct ntlm_sec *s)
{
	if (!s)
		return;
	EVP_CIPHER_CTX_free(s->rc4_in);         /* cleanses the key schedule */
	EVP_CIPHER_CTX_free(s->rc4_out);
	wipe(s, sizeof *s);
}
