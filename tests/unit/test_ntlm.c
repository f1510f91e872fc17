/*
 * test_ntlm.c - unit tests for lib/ntlm.c and lib/spnego.c, included
 * by unit.c (which provides CHECK and CHECK_MEM and registers NTLM_TESTS).
 *
 * Two kinds of known answers: the MS-NLMP 4.2.4 NTLMv2 examples (user
 * "User", domain "Domain", password "Password"), and a complete SPNEGO/NTLM
 * exchange captured from pyspnego 0.12 (user "u", password "p") against
 * this server, including a sealed request and our sealed reply, which
 * pyspnego accepted.  Everything else is a negative test cut from those.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ntlm.h"
#include "spnego.h"
#include "util.h"

/* ---- helpers ------------------------------------------------------------- */

static size_t ntlmt_unhex(const char *h, unsigned char *out, size_t cap)
{
	size_t n = 0;

	for (; h[0] && h[1] && n < cap; h += 2) {
		unsigned hi = (unsigned)(h[0] <= '9' ? h[0] - '0' : (h[0] | 0x20) - 'a' + 10);
		unsigned lo = (unsigned)(h[1] <= '9' ? h[1] - '0' : (h[1] | 0x20) - 'a' + 10);
		out[n++] = (unsigned char)(hi << 4 | lo);
	}
	return n;
}

static bool ntlmt_init(void)
{
	return CHECK(ntlm_crypto_init() == 0);
}

/* MS-NLMP 4.2.4: the NTLMv2 example. */
static const unsigned char ntlmt_server_challenge[8] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
#define NTLMT_SPEC_FLAGS 0xe28a8233u
/* 4.2.4.1.3 / 4.2.4.2.2: NTProofStr || temp (time 0, client challenge aa..,
 * AV pairs NbDomainName "Domain", NbComputerName "Server"). */
static const char ntlmt_spec_ntv2[] =
	"68cd0ab851e51c96aabc927bebef6a1c"
	"0101000000000000" "0000000000000000" "aaaaaaaaaaaaaaaa" "00000000"
	"02000c0044006f006d00610069006e00" "01000c00530065007200760065007200" "00000000"
	"00000000";
static const char ntlmt_spec_esk[] = "c5dad2544fc9799094ce1ce90bc9d03e";
static const char ntlmt_spec_sbk[] = "8de40ccadbc14a82f15cb0ad0de95ca3";

/* The pyspnego exchange (use_negotiate | wrapping_winrm, hostname "h").
 * Our CHALLENGE used server challenge 0123456789abcdef, filetime
 * 0x01d9000000000000 and names "H", "H", "h.example", "h.example". */
static const char ntlmt_py_init[] =
	"604806062b0601050502a03e303ca00e300c060a2b06010401823702020aa22a04284e544c4d"
	"5353500001000000378208e200000000280000000000000028000000000c04000000000f";
static const char ntlmt_py_chal[] =
	"a1819e30819ba0030a0101a10c060a2b06010401823702020aa281850481824e544c4d535350"
	"0002000000020002003800000035828ae20123456789abcdef0000000000000000480048003a"
	"0000000a0063450000000f48000200020048000100020048000400120068002e006500780061"
	"006d0070006c0065000300120068002e006500780061006d0070006c00650007000800000000"
	"000000d90100000000";
static const char ntlmt_py_auth[] =
	"a182013b30820137a0030a0101a282011a048201164e544c4d53535000030000001800180058"
	"0000009000900070000000000000000001000002000200000100000400040002010000100010"
	"000601000035828ae2000c04000000000f44039a47035bdb21e149767af1b314fe0000000000"
	"000000000000000000000000000000000000000eb6c7b27bbef52e9bbe768390ff4f43010100"
	"0000000000000000000000d9017f14a298d0473d0f0000000002000200480001000200480004"
	"00120068002e006500780061006d0070006c0065000300120068002e006500780061006d0070"
	"006c00650007000800000000000000d90109000c0068006f00730074002f0068000600040002"
	"0000000000000000000000750056004d0043564602c7887944280bf359f4c97f39a312041001"
	"0000000444c2749619530900000000";
static const char ntlmt_py_ek[] = "659550c621616558c0815ab45612018a";
/* Our final NegTokenResp (accept-completed + mechListMIC), the client's
 * first sealed request (seq 1: the mechListMIC took 0) and our reply. */
static const char ntlmt_py_final[] = "a11b3019a0030a0100a312041001000000a2bf8f4ad458284b00000000";
static const char ntlmt_py_wrap[] =
	"01000000fb51d98c69b2239d01000000a1bd279233d3c69454db1bcc1163573582fc9a";
static const char ntlmt_py_reply[] =
	"010000005a0502e09d1e6c2701000000f05b83d21627fa17f481415308edb4be52";
/* The same client with channel bindings: application data
 * "tls-server-end-point:" || 00 01 .. 1f. */
static const char ntlmt_py_auth_cbt[] =
	"a182014f3082014ba0030a0101a282012e0482012a4e544c4d53535000030000001800180058"
	"000000a400a40070000000000000001401000002000200140100000400040016010000100010"
	"001a01000035828ae2000c04000000000f1bec5cd8118bd853d079b67355be24070000000000"
	"000000000000000000000000000000000000005aa75756354b238464fffed98350fa15010100"
	"0000000000000000000000d9013c5df487777c1d3a0000000002000200480001000200480004"
	"00120068002e006500780061006d0070006c0065000300120068002e006500780061006d0070"
	"006c00650007000800000000000000d9010a0010008f1214c9c9cab8dc3bf866da9aba57a709"
	"000c0068006f00730074002f00680006000400020000000000000000000000750056004d005d"
	"dab5c08ec9b3b3fa7aeb07c80aa2ada3120410010000003f4103e0151616cd00000000";

/* The raw AUTHENTICATE_MESSAGE inside a captured NegTokenResp. */
static size_t ntlmt_inner_auth(const char *hex, unsigned char *out, size_t cap)
{
	unsigned char tok[1024];
	size_t n = ntlmt_unhex(hex, tok, sizeof tok);
	struct spnego_tok st;

	if (!CHECK(spnego_parse(tok, n, &st) == 0) || !CHECK(st.mech_token_len <= cap))
		return 0;
	memcpy(out, st.mech_token, st.mech_token_len);
	return st.mech_token_len;
}

/* ---- NTLM: hashes and the MS-NLMP 4.2.4 vectors ------------------------- */

static void test_ntlm_hash(void)
{
	unsigned char h[16], want[16], u16[8];
	/* 4.2.2.1.2 NTOWFv1("Password") */
	static const unsigned char nt_password[16] = {
		0xa4, 0xf4, 0x9c, 0x40, 0x65, 0x10, 0xbd, 0xca,
		0xb6, 0x82, 0x4e, 0xe7, 0xc3, 0x0f, 0xd8, 0x52 };

	if (!ntlmt_init())
		return;
	CHECK(ntlm_nt_hash("Password", h) == 0);
	CHECK_MEM(h, nt_password, 16);

	/* U+1F600 must become a surrogate pair, hashed as UTF-16LE. */
	memcpy(u16, "\x61\x00\x3d\xd8\x00\xde", 6);
	{
		EVP_MD *md4 = EVP_MD_fetch(NULL, "MD4", NULL);
		CHECK(md4 != NULL);
		if (md4) {
			CHECK(EVP_Digest(u16, 6, want, NULL, md4, NULL) == 1);
			CHECK(ntlm_nt_hash("a\xf0\x9f\x98\x80", h) == 0);
			CHECK_MEM(h, want, 16);
			EVP_MD_free(md4);
		}
	}

	/* Invalid UTF-8: overlong, surrogate, truncated, out of range. */
	CHECK(ntlm_nt_hash("\xc0\xaf", h) == -EINVAL);
	CHECK(ntlm_nt_hash("\xed\xa0\x80", h) == -EINVAL);
	CHECK(ntlm_nt_hash("ab\xe2\x82", h) == -EINVAL);
	CHECK(ntlm_nt_hash("\xf4\x90\x80\x80", h) == -EINVAL);
	CHECK(ntlm_nt_hash("\xff", h) == -EINVAL);
	CHECK(ntlm_nt_hash(NULL, h) == -EINVAL);
	{
		char big[NTLM_MAX_PASSWORD + 2];
		memset(big, 'x', sizeof big - 1);
		big[sizeof big - 1] = '\0';
		CHECK(ntlm_nt_hash(big, h) == -EINVAL);
		big[NTLM_MAX_PASSWORD] = '\0';
		CHECK(ntlm_nt_hash(big, h) == 0);
	}
}

static void test_ntlm_v2_spec(void)
{
	unsigned char nt[128], esk[16], sbk[16], h[16], ek[16];
	size_t nl = ntlmt_unhex(ntlmt_spec_ntv2, nt, sizeof nt);
	static const unsigned char random_key[16] = {
		0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
		0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55 };

	if (!ntlmt_init())
		return;
	ntlmt_unhex(ntlmt_spec_esk, esk, sizeof esk);
	ntlmt_unhex(ntlmt_spec_sbk, sbk, sizeof sbk);
	CHECK(ntlm_nt_hash("Password", h) == 0);

	/* KEY_EXCH: the exported key is the example's RandomSessionKey, which
	 * needs NTOWFv2, NTProofStr and the session base key all right. */
	CHECK(ntlm_verify_v2(h, "User", "Domain", ntlmt_server_challenge, nt, nl, esk, 16,
	    NTLMT_SPEC_FLAGS, ek) == 0);
	CHECK_MEM(ek, random_key, 16);
	/* Without KEY_EXCH it is the session base key itself. */
	CHECK(ntlm_verify_v2(h, "User", "Domain", ntlmt_server_challenge, nt, nl, NULL, 0,
	    NTLMT_SPEC_FLAGS & ~NTLMSSP_NEGOTIATE_KEY_EXCH, ek) == 0);
	CHECK_MEM(ek, sbk, 16);
	/* UPPER(user): the case the client typed does not matter. */
	CHECK(ntlm_verify_v2(h, "uSeR", "Domain", ntlmt_server_challenge, nt, nl, esk, 16,
	    NTLMT_SPEC_FLAGS, ek) == 0);
	/* ...but the domain is hashed as sent. */
	CHECK(ntlm_verify_v2(h, "User", "DOMAIN", ntlmt_server_challenge, nt, nl, esk, 16,
	    NTLMT_SPEC_FLAGS, ek) == -EACCES);
	CHECK(ntlm_verify_v2(h, "User", "", ntlmt_server_challenge, nt, nl, esk, 16,
	    NTLMT_SPEC_FLAGS, ek) == -EACCES);
	CHECK(ek[0] == 0 && !memcmp(ek, ek + 1, 15));

	/* Wrong password, wrong challenge, flipped proof or blob byte. */
	CHECK(ntlm_nt_hash("password", h) == 0);
	CHECK(ntlm_verify_v2(h, "User", "Domain", ntlmt_server_challenge, nt, nl, esk, 16,
	    NTLMT_SPEC_FLAGS, ek) == -EACCES);
	CHECK(ntlm_nt_hash("Password", h) == 0);
	{
		unsigned char sc[8];
		memcpy(sc, ntlmt_server_challenge, 8);
		sc[7] ^= 1;
		CHECK(ntlm_verify_v2(h, "User", "Domain", sc, nt, nl, esk, 16, NTLMT_SPEC_FLAGS,
		    ek) == -EACCES);
	}
	nt[3] ^= 0x10;
	CHECK(ntlm_verify_v2(h, "User", "Domain", ntlmt_server_challenge, nt, nl, esk, 16,
	    NTLMT_SPEC_FLAGS, ek) == -EACCES);
	nt[3] ^= 0x10;
	nt[40] ^= 0x01;
	CHECK(ntlm_verify_v2(h, "User", "Domain", ntlmt_server_challenge, nt, nl, esk, 16,
	    NTLMT_SPEC_FLAGS, ek) == -EACCES);
	nt[40] ^= 0x01;

	/* Malformed: NTLMv1 length, wrong RespType, KEY_EXCH without a key. */
	CHECK(ntlm_verify_v2(h, "User", "Domain", ntlmt_server_challenge, nt, 24, esk, 16,
	    NTLMT_SPEC_FLAGS, ek) == -EINVAL);
	nt[16] = 2;
	CHECK(ntlm_verify_v2(h, "User", "Domain", ntlmt_server_challenge, nt, nl, esk, 16,
	    NTLMT_SPEC_FLAGS, ek) == -EINVAL);
	nt[16] = 1;
	CHECK(ntlm_verify_v2(h, "User", "Domain", ntlmt_server_challenge, nt, nl, esk, 15,
	    NTLMT_SPEC_FLAGS, ek) == -EINVAL);
	CHECK(ntlm_verify_v2(h, "", "Domain", ntlmt_server_challenge, nt, nl, esk, 16,
	    NTLMT_SPEC_FLAGS, ek) == -EINVAL);
}

/* A client that hashed NTOWFv2 with an empty UserDom but sent "Domain"
 * (MS-NLMP 3.2.5.1.2: servers SHOULD accept it).  The proof is computed
 * here directly with OpenSSL, independently of ntlm.c. */
static void test_ntlm_v2_nil_domain(void)
{
	unsigned char nt[128], h[16], rk[16], sbk[16], ek[16], buf[160];
	size_t nl = ntlmt_unhex(ntlmt_spec_ntv2, nt, sizeof nt);
	unsigned int l = 0;
	static const unsigned char user_u16[] = { 'U', 0, 'S', 0, 'E', 0, 'R', 0 };

	if (!ntlmt_init())
		return;
	CHECK(ntlm_nt_hash("Password", h) == 0);
	CHECK(HMAC(EVP_md5(), h, 16, user_u16, sizeof user_u16, rk, &l) != NULL);
	memcpy(buf, ntlmt_server_challenge, 8);
	memcpy(buf + 8, nt + 16, nl - 16);
	CHECK(HMAC(EVP_md5(), rk, 16, buf, 8 + nl - 16, nt, &l) != NULL);
	CHECK(HMAC(EVP_md5(), rk, 16, nt, 16, sbk, &l) != NULL);

	CHECK(ntlm_verify_v2(h, "User", "Domain", ntlmt_server_challenge, nt, nl, NULL, 0,
	    NTLMT_SPEC_FLAGS & ~NTLMSSP_NEGOTIATE_KEY_EXCH, ek) == 0);
	CHECK_MEM(ek, sbk, 16);
	CHECK(ntlm_verify_v2(h, "User", "", ntlmt_server_challenge, nt, nl, NULL, 0,
	    NTLMT_SPEC_FLAGS & ~NTLMSSP_NEGOTIATE_KEY_EXCH, ek) == 0);
	CHECK(ntlm_verify_v2(h, "Other", "Domain", ntlmt_server_challenge, nt, nl, NULL, 0,
	    NTLMT_SPEC_FLAGS & ~NTLMSSP_NEGOTIATE_KEY_EXCH, ek) == -EACCES);
}

/* MS-NLMP 4.2.4.4: keys and the sealed "Plaintext" with seq 0, checked on
 * the receiving (our) side.  The server-to-client keys are pyspnego's. */
static void test_ntlm_seal_spec(void)
{
	static const unsigned char key[16] = {
		0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
		0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55 };
	unsigned char seal_c2s[16], sign_c2s[16], seal_s2c[16], sign_s2c[16], data[18], sig[16];
	unsigned char plain[18], keep[18], keepsig[16];
	struct ntlm_sec s;

	if (!ntlmt_init())
		return;
	ntlmt_unhex("59f600973cc4960a25480a7c196e4c58", seal_c2s, 16);
	ntlmt_unhex("4788dc861b4782f35d43fd98fe1a2d39", sign_c2s, 16);
	ntlmt_unhex("9355f3a957c1583d25c4c2f11e40390e", seal_s2c, 16);
	ntlmt_unhex("d04d6f10741041d1d246d64188d7a8ad", sign_s2c, 16);
	ntlmt_unhex("54e50165bf1936dc996020c1811b0f06fb5f", data, 18);
	ntlmt_unhex("010000007fb38ec5c55d497600000000", sig, 16);
	ntlmt_unhex("50006c00610069006e007400650078007400", plain, 18);
	memcpy(keep, data, 18);
	memcpy(keepsig, sig, 16);

	if (!CHECK(ntlm_sec_init(&s, key, NTLMT_SPEC_FLAGS) == 0))
		return;
	CHECK_MEM(s.seal_in, seal_c2s, 16);
	CHECK_MEM(s.sign_in, sign_c2s, 16);
	CHECK_MEM(s.seal_out, seal_s2c, 16);
	CHECK_MEM(s.sign_out, sign_s2c, 16);
	CHECK(ntlm_unseal(&s, data, 18, sig) == 0);
	CHECK_MEM(data, plain, 18);
	CHECK(s.seq_in == 1);
	/* The same message again (a replay) no longer matches: seq 1 now. */
	memcpy(data, keep, 18);
	CHECK(ntlm_unseal(&s, data, 18, sig) == -EACCES);
	CHECK(s.dead);
	ntlm_sec_free(&s);

	/* Tampered ciphertext, tampered checksum, tampered sequence number:
	 * each fails, zeroes the data and kills the context for good. */
	for (int which = 0; which < 3; which++) {
		static const unsigned char zero[18];
		if (!CHECK(ntlm_sec_init(&s, key, NTLMT_SPEC_FLAGS) == 0))
			return;
		memcpy(data, keep, 18);
		memcpy(sig, keepsig, 16);
		if (which == 0)
			data[5] ^= 0x01;
		else if (which == 1)
			sig[6] ^= 0x80;
		else
			sig[12] = 1;
		CHECK(ntlm_unseal(&s, data, 18, sig) == -EACCES);
		CHECK_MEM(data, zero, 18);
		memcpy(data, keep, 18);
		CHECK(ntlm_unseal(&s, data, 18, keepsig) == -EACCES);
		ntlm_sec_free(&s);
	}

	/* No SIGN or no ESS: no session security. */
	CHECK(ntlm_sec_init(&s, key, NTLMT_SPEC_FLAGS & ~NTLMSSP_NEGOTIATE_SIGN) == -EINVAL);
	CHECK(ntlm_sec_init(&s, key,
	    NTLMT_SPEC_FLAGS & ~NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY) == -EINVAL);
	/* Sealing needs SEAL; signing alone still works. */
	CHECK(ntlm_sec_init(&s, key, NTLMT_SPEC_FLAGS & ~NTLMSSP_NEGOTIATE_SEAL) == 0);
	CHECK(ntlm_seal(&s, data, 18, sig) == -EINVAL);
	CHECK(ntlm_sign_out(&s, data, 18, sig) == 0);
	ntlm_sec_free(&s);
}

/* ---- NTLM: messages -------------------------------------------------------- */

static void test_ntlm_negotiate(void)
{
	unsigned char m[64];
	size_t n;
	uint32_t f = 0;
	struct spnego_tok st;
	unsigned char tok[256];
	size_t tl = ntlmt_unhex(ntlmt_py_init, tok, sizeof tok);

	if (!CHECK(spnego_parse(tok, tl, &st) == 0) || !CHECK(st.mech_token_len <= sizeof m))
		return;
	n = st.mech_token_len;
	memcpy(m, st.mech_token, n);
	CHECK(ntlm_looks_like(m, n));
	CHECK(ntlm_parse_negotiate(m, n, &f) == 0);
	CHECK(f == 0xe2088237u);
	CHECK(ntlm_parse_negotiate(m, 16, &f) == 0);       /* old minimal form */
	CHECK(ntlm_parse_negotiate(m, 15, &f) == -EINVAL);
	CHECK(ntlm_parse_negotiate(m, 0, &f) == -EINVAL);
	m[8] = 2;
	CHECK(ntlm_parse_negotiate(m, n, &f) == -EINVAL);   /* wrong type */
	m[8] = 1;
	m[0] = 'n';
	CHECK(!ntlm_looks_like(m, n));
	CHECK(ntlm_parse_negotiate(m, n, &f) == -EINVAL);
	m[0] = 'N';
	/* DOMAIN_SUPPLIED with the domain field pointing past the end. */
	m[13] |= 0x10;
	m[16] = 4;
	m[20] = 0xf0;
	CHECK(ntlm_parse_negotiate(m, n, &f) == -EINVAL);
	m[20] = (unsigned char)(n - 4);
	CHECK(ntlm_parse_negotiate(m, n, &f) == 0);
	m[20] = 8;                                           /* inside the header */
	CHECK(ntlm_parse_negotiate(m, n, &f) == -EINVAL);
}

static void test_ntlm_challenge(void)
{
	unsigned char want[512], sc[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	size_t wl;
	struct buf b, w;
	uint32_t f = 0;
	struct spnego_tok st;

	buf_init(&b, 0);
	buf_init(&w, 0);
	/* Byte for byte what pyspnego accepted. */
	wl = ntlmt_unhex(ntlmt_py_chal, want, sizeof want);
	CHECK(ntlm_build_challenge(0xe2088237u, "H", "H", "h.example", "h.example",
	    0x01d9000000000000ULL, ntlmt_server_challenge, &b, &f) == 0);
	CHECK(f == 0xe28a8235u);
	CHECK(spnego_build_resp(SPNEGO_ACCEPT_INCOMPLETE, true, b.data, b.len, NULL, 0, &w) == 0);
	CHECK(w.len == wl);
	if (w.len == wl)
		CHECK_MEM(w.data, want, wl);
	CHECK(spnego_parse(w.data, w.len, &st) == 0);
	CHECK(st.kind == SPNEGO_RESP && st.mech_token_len == b.len);
	buf_reset(&b);

	/* ntlm-auth offers OEM only (0xe2889032): answered in UNICODE. */
	CHECK(ntlm_build_challenge(0xe2889032u, "WORKGROUP", "LINUX", NULL, "", 1, sc, &b, &f) == 0);
	CHECK((f & NTLMSSP_NEGOTIATE_UNICODE) && !(f & NTLMSSP_NEGOTIATE_OEM));
	CHECK(f & NTLMSSP_TARGET_TYPE_DOMAIN);
	CHECK(b.len >= 56 && !memcmp(b.data, "NTLMSSP\0\2\0\0\0", 12) && !memcmp(b.data + 24, sc, 8));
	if (b.len >= 56) {
		size_t off = (size_t)b.data[44] | (size_t)b.data[45] << 8;
		size_t len = (size_t)b.data[40] | (size_t)b.data[41] << 8;
		CHECK(off + len == b.len);
		/* NbDomain, NbComputer, Timestamp, EOL: no DNS pairs. */
		CHECK(len == 4 + 18 + 4 + 10 + 12 + 4);
	}
	buf_reset(&b);

	/* Nothing beyond what the client offered is switched on. */
	CHECK(ntlm_build_challenge(NTLMSSP_NEGOTIATE_UNICODE |
	    NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY, "D", "C", NULL, NULL, 0, sc, &b, &f) == 0);
	CHECK(!(f & (NTLMSSP_NEGOTIATE_SIGN | NTLMSSP_NEGOTIATE_SEAL | NTLMSSP_NEGOTIATE_KEY_EXCH |
	    NTLMSSP_NEGOTIATE_128 | NTLMSSP_NEGOTIATE_56 | NTLMSSP_NEGOTIATE_VERSION)));
	CHECK(f & NTLMSSP_NEGOTIATE_TARGET_INFO);
	buf_reset(&b);

	/* Refused: no ESS (NTLMv1/LM clients), no character set, bad names. */
	CHECK(ntlm_build_challenge(0xe2088237u & ~NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY,
	    "H", "H", NULL, NULL, 0, sc, &b, &f) == -EINVAL);
	CHECK(ntlm_build_challenge(0xe2088237u & ~3u, "H", "H", NULL, NULL, 0, sc, &b, &f) == -EINVAL);
	CHECK(ntlm_build_challenge(0xe2088237u, "", "H", NULL, NULL, 0, sc, &b, &f) == -EINVAL);
	CHECK(ntlm_build_challenge(0xe2088237u, "H", "\xc3", NULL, NULL, 0, sc, &b, &f) == -EINVAL);
	CHECK(b.len == 0);
	buf_free(&b);
	buf_free(&w);
}

static void test_ntlm_authenticate(void)
{
	unsigned char m[512], t[512];
	size_t n = ntlmt_inner_auth(ntlmt_py_auth, m, sizeof m);
	struct ntlm_auth a;

	if (!CHECK(n == 278))
		return;
	CHECK(ntlm_parse_authenticate(m, n, &a) == 0);
	CHECK(!strcmp(a.user, "u") && !strcmp(a.domain, "") && !strcmp(a.workstation, "VM"));
	CHECK(a.flags == 0xe28a8235u);
	CHECK(a.nt_len == 144 && a.nt == m + 0x70);
	CHECK(a.lm_len == 24 && a.esk_len == 16);
	CHECK(a.mic_offset == 72 && a.av_mic_present && a.av_flags == 2);
	CHECK(a.av_has_timestamp && a.av_timestamp == 0x01d9000000000000ULL);
	CHECK(a.av_target_name && !strcmp(a.target_name, "host/h"));
	CHECK(!a.av_has_cbt);
	CHECK(ntlm_check_flags(0xe28a8235u, a.flags) == 0);
	CHECK(ntlm_check_flags(0xe28a8235u & ~NTLMSSP_NEGOTIATE_KEY_EXCH, a.flags) == -EINVAL);
	CHECK(ntlm_check_flags(0xe28a8235u, a.flags & ~NTLMSSP_NEGOTIATE_UNICODE) == -EINVAL);

	/* Every truncation is malformed: the last field ends the message. */
	for (size_t k = 0; k < n; k++)
		if (!CHECK(ntlm_parse_authenticate(m, k, &a) == -EINVAL))
			break;

#define NTLMT_MUTATE(stmt, expect) do { \
		memcpy(t, m, n); stmt; \
		CHECK(ntlm_parse_authenticate(t, n, &a) == (expect)); \
	} while (0)
	NTLMT_MUTATE((void)0, 0);
	/* NT response offset out of range, or wrapping around. */
	NTLMT_MUTATE(t[24] = 0x10; t[25] = 0x01, -EINVAL);
	NTLMT_MUTATE(memset(t + 24, 0xff, 4), -EINVAL);
	NTLMT_MUTATE(t[20] = 0xff; t[21] = 0xff, -EINVAL);
	/* Payload inside the fixed header. */
	NTLMT_MUTATE(t[24] = 0x20; t[25] = 0, -EINVAL);
	/* An NTLMv1-sized (24-byte) NT response. */
	NTLMT_MUTATE(t[20] = 24; t[22] = 24, -EINVAL);
	/* Not NTLMv2 (RespType 2). */
	NTLMT_MUTATE(t[0x80] = 2, -EINVAL);
	/* No extended session security, no UNICODE, ANONYMOUS. */
	NTLMT_MUTATE(t[62] &= (unsigned char)~0x08, -EINVAL);
	NTLMT_MUTATE(t[60] &= (unsigned char)~0x01, -EINVAL);
	NTLMT_MUTATE(t[61] |= 0x08, -EINVAL);
	/* Empty user name (anonymous), odd-length and lone-surrogate names. */
	NTLMT_MUTATE(t[36] = 0, -EINVAL);
	NTLMT_MUTATE(t[36] = 1, -EINVAL);
	NTLMT_MUTATE(t[0x100] = 0x00; t[0x101] = 0xd8, -EINVAL);
	/* KEY_EXCH with a short EncryptedRandomSessionKey. */
	NTLMT_MUTATE(t[52] = 15, -EINVAL);
	/* AV pairs: a length past the blob, a bad MsvAvFlags size, no EOL. */
	NTLMT_MUTATE(t[0x9e] = 0xff; t[0x9f] = 0xff, -EINVAL);
	/* No MsvAvEOL: the NT response cut 8 bytes short ends at MsvAvFlags. */
	NTLMT_MUTATE(t[20] = 0x88; t[22] = 0x88, -EINVAL);
	{
		size_t o = 0x80 + 28;           /* the first AV pair */
		while (o + 4 <= 0x100 && (m[o] | m[o + 1] << 8) != 6)
			o += 4 + (size_t)(m[o + 2] | m[o + 3] << 8);
		if (!CHECK(o + 8 <= 0x100 && m[o] == 6))
			return;
		NTLMT_MUTATE(t[o + 2] = 2, -EINVAL);
		/* MIC claimed but the LM response starts inside the MIC field. */
		NTLMT_MUTATE(t[16] = 72, -EINVAL);
		/* Without the MIC flag the same layout is fine. */
		NTLMT_MUTATE(t[16] = 72; t[o + 4] = 0, 0);
	}
	NTLMT_MUTATE(t[8] = 1, -EINVAL);
#undef NTLMT_MUTATE
}

static void test_ntlm_mic(void)
{
	unsigned char neg[128], chal[512], auth[512], tok[512], ek[16], h[16];
	size_t nl, cl, al, tl;
	struct spnego_tok st;
	struct ntlm_auth a;

	if (!ntlmt_init())
		return;
	tl = ntlmt_unhex(ntlmt_py_init, tok, sizeof tok);
	if (!CHECK(spnego_parse(tok, tl, &st) == 0))
		return;
	nl = st.mech_token_len;
	memcpy(neg, st.mech_token, nl);
	tl = ntlmt_unhex(ntlmt_py_chal, tok, sizeof tok);
	if (!CHECK(spnego_parse(tok, tl, &st) == 0))
		return;
	cl = st.mech_token_len;
	memcpy(chal, st.mech_token, cl);
	al = ntlmt_inner_auth(ntlmt_py_auth, auth, sizeof auth);
	if (!CHECK(ntlm_parse_authenticate(auth, al, &a) == 0))
		return;

	CHECK(ntlm_nt_hash("p", h) == 0);
	CHECK(ntlm_verify_v2(h, a.user, a.domain, ntlmt_server_challenge, a.nt, a.nt_len, a.esk,
	    a.esk_len, a.flags, ek) == 0);
	{
		unsigned char want[16];
		ntlmt_unhex(ntlmt_py_ek, want, 16);
		CHECK_MEM(ek, want, 16);
	}
	CHECK(ntlm_verify_mic(ek, neg, nl, chal, cl, auth, al, a.mic_offset) == 0);
	/* Any byte of any of the three messages matters, and so does the key. */
	neg[12] ^= 1;
	CHECK(ntlm_verify_mic(ek, neg, nl, chal, cl, auth, al, a.mic_offset) == -EACCES);
	neg[12] ^= 1;
	chal[30] ^= 1;
	CHECK(ntlm_verify_mic(ek, neg, nl, chal, cl, auth, al, a.mic_offset) == -EACCES);
	chal[30] ^= 1;
	auth[60] ^= 0x20;   /* a flag the attacker would like to strip */
	CHECK(ntlm_verify_mic(ek, neg, nl, chal, cl, auth, al, a.mic_offset) == -EACCES);
	auth[60] ^= 0x20;
	auth[80] ^= 1;      /* the MIC itself */
	CHECK(ntlm_verify_mic(ek, neg, nl, chal, cl, auth, al, a.mic_offset) == -EACCES);
	auth[80] ^= 1;
	ek[0] ^= 1;
	CHECK(ntlm_verify_mic(ek, neg, nl, chal, cl, auth, al, a.mic_offset) == -EACCES);
	ek[0] ^= 1;
	CHECK(ntlm_verify_mic(ek, neg, nl, chal, cl, auth, al, 0) == -EINVAL);
	CHECK(ntlm_verify_mic(ek, neg, nl, chal, cl, auth, al, al - 15) == -EINVAL);
	CHECK(ntlm_verify_mic(ek, neg, nl, chal, cl, auth, al, a.mic_offset) == 0);

	/* The wrong password fails before any key exists. */
	CHECK(ntlm_nt_hash("P", h) == 0);
	CHECK(ntlm_verify_v2(h, a.user, a.domain, ntlmt_server_challenge, a.nt, a.nt_len, a.esk,
	    a.esk_len, a.flags, ek) == -EACCES);
}

static void test_ntlm_cbt(void)
{
	unsigned char auth[512], app[53], want[16];
	size_t al = ntlmt_inner_auth(ntlmt_py_auth_cbt, auth, sizeof auth);
	struct ntlm_auth a;

	if (!ntlmt_init())
		return;
	memcpy(app, "tls-server-end-point:", 21);
	for (int i = 0; i < 32; i++)
		app[21 + i] = (unsigned char)i;
	if (!CHECK(ntlm_parse_authenticate(auth, al, &a) == 0))
		return;
	CHECK(a.av_has_cbt);
	ntlm_cbt_hash(app, sizeof app, want);
	CHECK_MEM(a.av_cbt, want, 16);
	app[52] ^= 1;
	ntlm_cbt_hash(app, sizeof app, want);
	CHECK(memcmp(a.av_cbt, want, 16) != 0);
}

/* The whole pyspnego exchange, server side, including the mechListMIC
 * sequence-number quirk: their MIC used seq 0, then both sides re-key RC4
 * and keep counting, so the first sealed messages carry seq 1. */
static void test_ntlm_pyspnego_session(void)
{
	unsigned char init[256], auth_tok[512], ek[16], h[16], sig[16], w[64], rep[64];
	size_t il, atl, wl, rl;
	struct spnego_tok st_init, st_auth;
	struct ntlm_auth a;
	struct ntlm_sec s;
	struct buf out;
	unsigned char msg[] = "reply from winrmd";

	if (!ntlmt_init())
		return;
	il = ntlmt_unhex(ntlmt_py_init, init, sizeof init);
	atl = ntlmt_unhex(ntlmt_py_auth, auth_tok, sizeof auth_tok);
	if (!CHECK(spnego_parse(init, il, &st_init) == 0) ||
	    !CHECK(spnego_parse(auth_tok, atl, &st_auth) == 0) ||
	    !CHECK(ntlm_parse_authenticate(st_auth.mech_token, st_auth.mech_token_len, &a) == 0))
		return;
	CHECK(ntlm_nt_hash("p", h) == 0);
	CHECK(ntlm_verify_v2(h, a.user, a.domain, ntlmt_server_challenge, a.nt, a.nt_len, a.esk,
	    a.esk_len, a.flags, ek) == 0);
	if (!CHECK(ntlm_sec_init(&s, ek, a.flags) == 0))
		return;

	CHECK(st_auth.mic_len == 16);
	CHECK(ntlm_verify_in(&s, st_init.mech_types, st_init.mech_types_len, st_auth.mic) == 0);
	ntlm_sec_reset_rc4(&s, true);
	CHECK(ntlm_sign_out(&s, st_init.mech_types, st_init.mech_types_len, sig) == 0);
	ntlm_sec_reset_rc4(&s, false);
	CHECK(s.seq_in == 1 && s.seq_out == 1);
	buf_init(&out, 0);
	CHECK(spnego_build_resp(SPNEGO_ACCEPT_COMPLETED, false, NULL, 0, sig, 16, &out) == 0);
	{
		unsigned char want[64];
		size_t n = ntlmt_unhex(ntlmt_py_final, want, sizeof want);
		CHECK(out.len == n);
		if (out.len == n)
			CHECK_MEM(out.data, want, n);
	}
	buf_free(&out);

	wl = ntlmt_unhex(ntlmt_py_wrap, w, sizeof w);
	CHECK(ntlm_unseal(&s, w + 16, wl - 16, w) == 0);
	CHECK(wl - 16 == 19 && !memcmp(w + 16, "hello from pyspnego", 19));

	rl = ntlmt_unhex(ntlmt_py_reply, rep, sizeof rep);
	CHECK(ntlm_seal(&s, msg, sizeof msg - 1, sig) == 0);
	CHECK(rl == 16 + sizeof msg - 1);
	CHECK_MEM(sig, rep, 16);
	CHECK_MEM(msg, rep + 16, sizeof msg - 1);
	CHECK(s.seq_out == 2);

	/* Replaying the client's message is refused. */
	wl = ntlmt_unhex(ntlmt_py_wrap, w, sizeof w);
	CHECK(ntlm_unseal(&s, w + 16, wl - 16, w) == -EACCES);
	CHECK(ntlm_seal(&s, msg, 1, sig) == -EACCES);       /* dead context */
	ntlm_sec_free(&s);
	CHECK(s.rc4_in == NULL && s.sign_in[0] == 0);
}

/* ---- SPNEGO -------------------------------------------------------------- */

static void test_spnego_parse_init(void)
{
	unsigned char t[256];
	size_t n = ntlmt_unhex(ntlmt_py_init, t, sizeof t);
	struct spnego_tok st;
	static const unsigned char mech_list[] = {
		0x30, 0x0c, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a };

	CHECK(spnego_looks_like(t, n));
	if (!CHECK(spnego_parse(t, n, &st) == 0))
		return;
	CHECK(st.kind == SPNEGO_INIT);
	CHECK(st.offers_ntlm && st.mech_ntlm_first && !st.offers_krb5 && !st.mech_krb5_first);
	CHECK(st.mech_types_len == sizeof mech_list);
	CHECK_MEM(st.mech_types, mech_list, sizeof mech_list);
	CHECK(st.mech_token_len == 40 && ntlm_looks_like(st.mech_token, st.mech_token_len));
	CHECK(st.mic == NULL && st.neg_state == -1);

	/* Kerberos (Microsoft OID) first, then krb5, then NTLM. */
	n = ntlmt_unhex("603a06062b0601050502a030302ea0243022"
	    "06092a864882f71201020206092a864886f712010202060a2b06010401823702020a"
	    "a2060404deadbeef", t, sizeof t);
	if (CHECK(spnego_parse(t, n, &st) == 0)) {
		CHECK(st.mech_krb5_first && st.offers_krb5 && st.offers_ntlm && !st.mech_ntlm_first);
		CHECK(st.mech_token_len == 4 && st.mech_token[0] == 0xde);
	}
	/* NegTokenInit2 layout: negHints [3] then mechListMIC [4]. */
	n = ntlmt_unhex("603006062b0601050502a026302ca00e300c060a2b06010401823702020a"
	    "a30a3008a0061b044e4f4e45a4060404cafebabe", t, sizeof t);
	t[1] = (unsigned char)(n - 2);
	t[11] = (unsigned char)(n - 12);
	t[13] = (unsigned char)(n - 14);
	if (CHECK(spnego_parse(t, n, &st) == 0))
		CHECK(st.mic_len == 4 && st.mic[0] == 0xca && st.mech_token == NULL);
}

static void test_spnego_resp_roundtrip(void)
{
	unsigned char tok[300], mic[16];
	struct buf b;
	struct spnego_tok st;
	static const unsigned char ntlm_oid[] = { 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a };

	for (size_t i = 0; i < sizeof tok; i++)
		tok[i] = (unsigned char)(i * 7);
	memset(mic, 0x5a, sizeof mic);
	buf_init(&b, 0);
	/* 300 bytes forces two-byte DER lengths on the way. */
	CHECK(spnego_build_resp(SPNEGO_ACCEPT_INCOMPLETE, true, tok, sizeof tok, mic, 16, &b) == 0);
	CHECK(spnego_looks_like(b.data, b.len));
	if (CHECK(spnego_parse(b.data, b.len, &st) == 0)) {
		CHECK(st.kind == SPNEGO_RESP && st.neg_state == SPNEGO_ACCEPT_INCOMPLETE);
		CHECK(st.supported_mech_len == sizeof ntlm_oid);
		CHECK_MEM(st.supported_mech, ntlm_oid, sizeof ntlm_oid);
		CHECK(st.mech_token_len == sizeof tok);
		CHECK_MEM(st.mech_token, tok, sizeof tok);
		CHECK(st.mic_len == 16);
		CHECK_MEM(st.mic, mic, 16);
	}
	buf_reset(&b);
	for (size_t l = 0; l < 200; l += 13) {
		CHECK(spnego_build_resp(-1, false, tok, l, NULL, 0, &b) == 0);
		if (CHECK(spnego_parse(b.data, b.len, &st) == 0))
			CHECK(st.neg_state == -1 && st.mech_token_len == l && !st.supported_mech && !st.mic);
		buf_reset(&b);
	}
	CHECK(spnego_build_resp(SPNEGO_REJECT, false, NULL, 0, NULL, 0, &b) == 0);
	CHECK(b.len == 9 && spnego_parse(b.data, b.len, &st) == 0 && st.neg_state == SPNEGO_REJECT);
	buf_reset(&b);
	CHECK(spnego_build_resp(4, false, NULL, 0, NULL, 0, &b) == -EINVAL);
	CHECK(spnego_build_resp(0, false, tok, SPNEGO_MAX_TOKEN + 1, NULL, 0, &b) == -EINVAL);
	CHECK(b.len == 0);
	buf_free(&b);
}

static void test_spnego_reject(void)
{
	unsigned char t[512], u[512];
	size_t n;
	struct spnego_tok st;

	/* Every proper prefix of real tokens is malformed. */
	n = ntlmt_unhex(ntlmt_py_init, t, sizeof t);
	for (size_t k = 0; k < n; k++)
		if (!CHECK(spnego_parse(t, k, &st) == -EINVAL))
			break;
	/* A trailing byte is not DER either. */
	t[n] = 0;
	CHECK(spnego_parse(t, n + 1, &st) == -EINVAL);
	n = ntlmt_unhex(ntlmt_py_auth, t, sizeof t);
	for (size_t k = 0; k < n; k++)
		if (!CHECK(spnego_parse(t, k, &st) == -EINVAL))
			break;
	CHECK(spnego_parse(t, n, &st) == 0);

	/* Non-minimal length (0x81 0x05), indefinite length, bad negState. */
	n = ntlmt_unhex("a1073005a0030a0101", u, sizeof u);
	CHECK(spnego_parse(u, n, &st) == 0 && st.neg_state == 1);
	n = ntlmt_unhex("a181073005a0030a0101", u, sizeof u);
	CHECK(spnego_parse(u, n, &st) == -EINVAL);
	n = ntlmt_unhex("a1803005a0030a01010000", u, sizeof u);
	CHECK(spnego_parse(u, n, &st) == -EINVAL);
	n = ntlmt_unhex("a1073005a0030a0104", u, sizeof u);
	CHECK(spnego_parse(u, n, &st) == -EINVAL);
	/* Fields out of order, unknown field, wrong inner type. */
	n = ntlmt_unhex("a10e300ca2020400a0030a0101a3020400", u, sizeof u);
	u[1] = (unsigned char)(n - 2);
	u[3] = (unsigned char)(n - 4);
	CHECK(spnego_parse(u, n, &st) == -EINVAL);
	n = ntlmt_unhex("a1073005a5030a0101", u, sizeof u);
	CHECK(spnego_parse(u, n, &st) == -EINVAL);
	n = ntlmt_unhex("a1073005a003020101", u, sizeof u);
	CHECK(spnego_parse(u, n, &st) == -EINVAL);
	/* A raw Kerberos token and raw NTLM are not SPNEGO. */
	n = ntlmt_unhex("600f06092a864886f71201020201000000", u, sizeof u);
	CHECK(!spnego_looks_like(u, n));
	CHECK(spnego_parse(u, n, &st) == -EINVAL);
	CHECK(!spnego_looks_like((const unsigned char *)"NTLMSSP\0\1\0\0\0", 12));
	/* Empty mech list; too many mechs. */
	n = ntlmt_unhex("601006062b0601050502a0063004a0023000", u, sizeof u);
	CHECK(spnego_parse(u, n, &st) == -EINVAL);
	{
		size_t m = SPNEGO_MAX_MECHS + 1, o = 0, list = m * 3;
		u[o++] = 0x60; u[o++] = (unsigned char)(8 + 2 + 2 + 2 + 2 + list);
		memcpy(u + o, "\x06\x06\x2b\x06\x01\x05\x05\x02", 8); o += 8;
		u[o++] = 0xa0; u[o++] = (unsigned char)(2 + 2 + 2 + list);
		u[o++] = 0x30; u[o++] = (unsigned char)(2 + 2 + list);
		u[o++] = 0xa0; u[o++] = (unsigned char)(2 + list);
		u[o++] = 0x30; u[o++] = (unsigned char)list;
		for (size_t i = 0; i < m; i++) {
			u[o++] = 0x06; u[o++] = 1; u[o++] = (unsigned char)(0x10 + i);
		}
		CHECK(spnego_parse(u, o, &st) == -EINVAL);
		u[1] -= 3; u[11] -= 3; u[13] -= 3; u[15] -= 3; u[17] -= 3;
		CHECK(spnego_parse(u, o - 3, &st) == 0);
	}
	CHECK(spnego_parse(NULL, 0, &st) == -EINVAL);
}

#define NTLM_TESTS \
	X(test_ntlm_hash) \
	X(test_ntlm_v2_spec) \
	X(test_ntlm_v2_nil_domain) \
	X(test_ntlm_seal_spec) \
	X(test_ntlm_negotiate) \
	X(test_ntlm_challenge) \
	X(test_ntlm_authenticate) \
	X(test_ntlm_mic) \
	X(test_ntlm_cbt) \
	X(test_ntlm_pyspnego_session) \
	X(test_spnego_parse_init) \
	X(test_spnego_resp_roundtrip) \
	X(test_spnego_reject)
