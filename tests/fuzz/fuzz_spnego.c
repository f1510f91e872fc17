/*
 * fuzz_spnego.c - libFuzzer harness for spnego_parse, the DER parser for
 * Negotiate tokens from unauthenticated clients (worker).
 *
 * Whatever it accepts must point inside the input; when it carries a token
 * we wrap that token (and the mechListMIC) in our own NegTokenResp and the
 * result must parse back to the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spnego.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(const unsigned char *p, size_t n, const uint8_t *data, size_t size)
{
	if (n == 0)
		return true;
	return p && p >= data && n <= size && (size_t)(p - data) <= size - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spnego_tok t, back;
	struct buf b;
	int r;

	(void)spnego_looks_like(data, size);
	r = spnego_parse(data, size, &t);
	if (r != 0 && r != -EINVAL)
		abort();
	if (r != 0)
		return 0;
	if ((t.kind != SPNEGO_INIT && t.kind != SPNEGO_RESP) || t.neg_state < -1 || t.neg_state > 3 ||
	    !inside(t.mech_types, t.mech_types_len, data, size) ||
	    !inside(t.mech_token, t.mech_token_len, data, size) ||
	    !inside(t.mic, t.mic_len, data, size) ||
	    !inside(t.supported_mech, t.supported_mech_len, data, size) ||
	    t.mic_len > SPNEGO_MAX_MIC || (t.kind == SPNEGO_INIT && !t.mech_types_len))
		abort();
	if (!t.mech_token)
		return 0;

	buf_init(&b, 0);
	if (spnego_build_resp(SPNEGO_ACCEPT_INCOMPLETE, true, t.mech_token, t.mech_token_len, t.mic,
	    t.mic_len, &b) != 0)
		abort();
	if (spnego_parse(b.data, b.len, &back) != 0 || back.kind != SPNEGO_RESP ||
	    back.neg_state != SPNEGO_ACCEPT_INCOMPLETE || back.mech_token_len != t.mech_token_len ||
	    memcmp(back.mech_token, t.mech_token, t.mech_token_len) ||
	    back.mic_len != t.mic_len || (t.mic_len && memcmp(back.mic, t.mic, t.mic_len)))
		abort();
	buf_free(&b);
	return 0;
}
