/*
 * fuzz_ntlm.c - libFuzzer harness for the NTLM message parsers, the first
 * code to touch a raw NTLMSSP token from an unauthenticated client (worker).
 *
 * Every input goes to ntlm_parse_negotiate and ntlm_parse_authenticate.
 * What they accept must point inside the input and respect the limits the
 * monitor relies on; an accepted NEGOTIATE is answered with a CHALLENGE and
 * an accepted AUTHENTICATE is run through verification and the MIC check
 * (which must fail cleanly: the fuzzer does not know the password).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ntlm.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(const unsigned char *p, size_t n, const uint8_t *data, size_t size)
{
	if (n == 0)
		return p == NULL;
	return p && p >= data && n <= size && (size_t)(p - data) <= size - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char sc[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	static bool ready;
	struct ntlm_auth a;
	uint32_t flags, nf;
	int r;

	if (!ready) {
		if (ntlm_crypto_init() < 0)
			abort();
		ready = true;
	}

	r = ntlm_parse_negotiate(data, size, &flags);
	if (r != 0 && r != -EINVAL)
		abort();
	if (r == 0) {
		struct buf b;
		buf_init(&b, 0);
		r = ntlm_build_challenge(flags, "WINRMD", "HOST", "example.com", "host.example.com",
		    0x01d9000000000000ULL, sc, &b, &nf);
		if (r != 0 && r != -EINVAL)
			abort();
		if (r == 0 && (!(nf & NTLMSSP_NEGOTIATE_UNICODE) ||
		    !(nf & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY) || b.len > NTLM_MAX_MSG))
			abort();
		buf_free(&b);
	}

	r = ntlm_parse_authenticate(data, size, &a);
	if (r != 0 && r != -EINVAL)
		abort();
	if (r == 0) {
		unsigned char h[16] = { 0 }, ek[16];
		if (!inside(a.nt, a.nt_len, data, size) || !inside(a.lm, a.lm_len, data, size) ||
		    !inside(a.esk, a.esk_len, data, size))
			abort();
		if (!a.user[0] || strlen(a.user) > NTLM_MAX_NAME || strlen(a.domain) > NTLM_MAX_NAME ||
		    strlen(a.workstation) > NTLM_MAX_NAME || a.nt_len < 16 + 28)
			abort();
		if (a.mic_offset != 0 && (a.mic_offset != 72 || size < 88 || !a.av_mic_present))
			abort();
		r = ntlm_verify_v2(h, a.user, a.domain, sc, a.nt, a.nt_len, a.esk, a.esk_len, a.flags, ek);
		if (r != -EACCES && r != -EINVAL && r != 0)
			abort();
		if (a.mic_offset) {
			r = ntlm_verify_mic(ek, data, size, data, size, data, size, a.mic_offset);
			if (r != -EACCES && r != 0)
				abort();
		}
		(void)ntlm_check_flags(0xe28a8235u, a.flags);
	}
	return 0;
}
