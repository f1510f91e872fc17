/*
 * spnego.c - SPNEGO (RFC 4178) DER framing: parse the client's
 * NegTokenInit/NegTokenResp, build our NegTokenResp (worker, user winrmd).
 *
 * The parser is a flat walk over a fixed grammar with a bounds-checked
 * cursor: no recursion, so nesting is bounded by construction, and every
 * length is checked against what is left before anything is read.  Only DER
 * is accepted (definite, minimal lengths; low tag numbers; no trailing
 * bytes) so that the MechTypeList the client signed is exactly the bytes we
 * hand to the mechListMIC check.
 */
#include <errno.h>
#include <string.h>

#include "spnego.h"

#define TAG_BIT_STRING  0x03
#define TAG_OCTET       0x04
#define TAG_OID         0x06
#define TAG_ENUM        0x0a
#define TAG_SEQ         0x30
#define TAG_APP0        0x60
#define CTX(n)          (0xa0 | (n))

static const unsigned char oid_spnego[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02 };
static const unsigned char oid_ntlm[] = { 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a };
static const unsigned char oid_krb5[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02 };
static const unsigned char oid_mskrb5[] = { 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02 };

/* A cursor over DER bytes. */
struct der {
	const unsigned char *p;
	size_t n;
};

static int der_peek(const struct der *c)
{
	return c->n ? c->p[0] : -1;
}

/*
 * Take one TLV with the given tag off the front of c.  val gets the
 * contents; whole (optional) the TLV including its header.
 */
static int der_take(struct der *c, int tag, struct der *val, struct der *whole)
{
	size_t len, hl;

	if (c->n < 2 || c->p[0] != tag)
		return -EINVAL;
	if (c->p[1] < 0x80) {
		len = c->p[1];
		hl = 2;
	} else {
		/* 0x80 is BER's indefinite form; more than 2 length bytes would
		 * exceed SPNEGO_MAX_TOKEN anyway. */
		size_t k = c->p[1] & 0x7fu;
		if (k == 0 || k > 2 || c->n - 2 < k || c->p[2] == 0)
			return -EINVAL;
		len = 0;
		for (size_t i = 0; i < k; i++)
			len = len << 8 | c->p[2 + i];
		if (len < 0x80)
			return -EINVAL;         /* not minimal */
		hl = 2 + k;
	}
	if (len > c->n - hl)
		return -EINVAL;
	val->p = c->p + hl;
	val->n = len;
	if (whole) {
		whole->p = c->p;
		whole->n = hl + len;
	}
	c->p += hl + len;
	c->n -= hl + len;
	return 0;
}

/* [n] EXPLICIT wrapper holding exactly one TLV with the given tag. */
static int der_explicit(struct der *c, int n, int tag, struct der *val, struct der *whole)
{
	struct der wrap;

	if (der_take(c, CTX(n), &wrap, NULL) < 0 || der_take(&wrap, tag, val, whole) < 0 || wrap.n)
		return -EINVAL;
	return 0;
}

static bool oid_is(const struct der *o, const unsigned char *oid, size_t len)
{
	return o->n == len && memcmp(o->p, oid, len) == 0;
}

static bool oid_is_krb5(const struct der *o)
{
	return oid_is(o, oid_krb5, sizeof oid_krb5) || oid_is(o, oid_mskrb5, sizeof oid_mskrb5);
}

/* An OID's contents: non-empty and its last subidentifier terminated. */
static bool oid_valid(const struct der *o)
{
	return o->n > 0 && !(o->p[o->n - 1] & 0x80);
}

static int parse_mech_types(struct der *c, struct spnego_tok *t)
{
	struct der list, whole, oid;
	size_t count = 0;

	if (der_explicit(c, 0, TAG_SEQ, &list, &whole) < 0)
		return -EINVAL;
	t->mech_types = whole.p;
	t->mech_types_len = whole.n;
	while (list.n) {
		if (++count > SPNEGO_MAX_MECHS || der_take(&list, TAG_OID, &oid, NULL) < 0 ||
		    !oid_valid(&oid))
			return -EINVAL;
		if (oid_is(&oid, oid_ntlm, sizeof oid_ntlm)) {
			t->offers_ntlm = true;
			t->mech_ntlm_first |= count == 1;
		} else if (oid_is_krb5(&oid)) {
			t->offers_krb5 = true;
			t->mech_krb5_first |= count == 1;
		}
	}
	return count ? 0 : -EINVAL;
}

static void set_opt(const struct der *v, const unsigned char **p, size_t *n)
{
	*p = v->n ? v->p : NULL;
	*n = v->n;
}

/* NegTokenInit (RFC 4178 4.2.1), also accepting the [3] negHints that
 * Microsoft's NegTokenInit2 puts before the mechListMIC at [4]. */
static int parse_init(struct der *seq, struct spnego_tok *t)
{
	struct der v;

	if (parse_mech_types(seq, t) < 0)
		return -EINVAL;
	if (der_peek(seq) == CTX(1) && der_explicit(seq, 1, TAG_BIT_STRING, &v, NULL) < 0)
		return -EINVAL;
	if (der_peek(seq) == CTX(2)) {
		if (der_explicit(seq, 2, TAG_OCTET, &v, NULL) < 0)
			return -EINVAL;
		set_opt(&v, &t->mech_token, &t->mech_token_len);
	}
	if (der_peek(seq) == CTX(3)) {
		struct der look = *seq, w;
		if (der_take(&look, CTX(3), &w, NULL) == 0 && der_peek(&w) == TAG_SEQ) {
			if (der_explicit(seq, 3, TAG_SEQ, &v, NULL) < 0)
				return -EINVAL;         /* negHints: ignored */
		} else {
			if (der_explicit(seq, 3, TAG_OCTET, &v, NULL) < 0)
				return -EINVAL;
			set_opt(&v, &t->mic, &t->mic_len);
		}
	}
	if (der_peek(seq) == CTX(4) && !t->mic) {
		if (der_explicit(seq, 4, TAG_OCTET, &v, NULL) < 0)
			return -EINVAL;
		set_opt(&v, &t->mic, &t->mic_len);
	}
	return seq->n ? -EINVAL : 0;
}

/* NegTokenResp (RFC 4178 4.2.2). */
static int parse_resp(struct der *seq, struct spnego_tok *t)
{
	struct der v;

	if (der_peek(seq) == CTX(0)) {
		if (der_explicit(seq, 0, TAG_ENUM, &v, NULL) < 0 || v.n != 1 || v.p[0] > SPNEGO_REQUEST_MIC)
			return -EINVAL;
		t->neg_state = v.p[0];
	}
	if (der_peek(seq) == CTX(1)) {
		if (der_explicit(seq, 1, TAG_OID, &v, NULL) < 0 || !oid_valid(&v))
			return -EINVAL;
		t->supported_mech = v.p;
		t->supported_mech_len = v.n;
	}
	if (der_peek(seq) == CTX(2)) {
		if (der_explicit(seq, 2, TAG_OCTET, &v, NULL) < 0)
			return -EINVAL;
		set_opt(&v, &t->mech_token, &t->mech_token_len);
	}
	if (der_peek(seq) == CTX(3)) {
		if (der_explicit(seq, 3, TAG_OCTET, &v, NULL) < 0)
			return -EINVAL;
		set_opt(&v, &t->mic, &t->mic_len);
	}
	return seq->n ? -EINVAL : 0;
}

int spnego_parse(const unsigned char *t, size_t n, struct spnego_tok *out)
{
	struct der c = { t, n }, body, oid, seq;
	int r;

	memset(out, 0, sizeof *out);
	out->neg_state = -1;
	if (!t || n > SPNEGO_MAX_TOKEN)
		return -EINVAL;
	if (der_peek(&c) == TAG_APP0) {
		/* InitialContextToken: thisMech, then the NegotiationToken. */
		if (der_take(&c, TAG_APP0, &body, NULL) < 0 || c.n ||
		    der_take(&body, TAG_OID, &oid, NULL) < 0 ||
		    !oid_is(&oid, oid_spnego, sizeof oid_spnego) ||
		    der_explicit(&body, 0, TAG_SEQ, &seq, NULL) < 0 || body.n)
			goto out;
		out->kind = SPNEGO_INIT;
		r = parse_init(&seq, out);
	} else {
		if (der_explicit(&c, 1, TAG_SEQ, &seq, NULL) < 0 || c.n)
			goto out;
		out->kind = SPNEGO_RESP;
		r = parse_resp(&seq, out);
	}
	if (r < 0 || out->mic_len > SPNEGO_MAX_MIC)
		goto out;
	return 0;
out:
	memset(out, 0, sizeof *out);
	out->neg_state = -1;
	return -EINVAL;
}

bool spnego_looks_like(const unsigned char *t, size_t n)
{
	struct der c = { t, n }, body, oid;

	if (!t || n < 2)
		return false;
	if (t[0] == CTX(1))
		return true;
	return der_take(&c, TAG_APP0, &body, NULL) == 0 &&
	    der_take(&body, TAG_OID, &oid, NULL) == 0 &&
	    oid_is(&oid, oid_spnego, sizeof oid_spnego);
}

/* ---- building ------------------------------------------------------------ */

static size_t tlv_len(size_t content)
{
	return 1 + (content < 0x80 ? 1 : content < 0x100 ? 2 : 3) + content;
}

static int put_hdr(struct buf *b, unsigned char tag, size_t len)
{
	unsigned char h[4];
	size_t hl;

	h[0] = tag;
	if (len < 0x80) {
		h[1] = (unsigned char)len;
		hl = 2;
	} else if (len < 0x100) {
		h[1] = 0x81;
		h[2] = (unsigned char)len;
		hl = 3;
	} else {
		h[1] = 0x82;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		hl = 4;
	}
	return buf_append(b, h, hl);
}

/* [n] { OCTET STRING p } */
static int put_octets(struct buf *b, int n, const unsigned char *p, size_t len)
{
	int r;

	if ((r = put_hdr(b, (unsigned char)CTX(n), tlv_len(len))) < 0 ||
	    (r = put_hdr(b, TAG_OCTET, len)) < 0)
		return r;
	return buf_append(b, p, len);
}

int spnego_build_resp(int neg_state, bool with_ntlm_mech, const unsigned char *resp_tok,
    size_t rl, const unsigned char *mic, size_t ml, struct buf *out)
{
	size_t body = 0, start;
	int r;

	if (!out || neg_state < -1 || neg_state > SPNEGO_REQUEST_MIC ||
	    (resp_tok && rl > SPNEGO_MAX_TOKEN) || (mic && ml > SPNEGO_MAX_MIC))
		return -EINVAL;
	if (neg_state >= 0)
		body += tlv_len(tlv_len(1));
	if (with_ntlm_mech)
		body += tlv_len(tlv_len(sizeof oid_ntlm));
	if (resp_tok)
		body += tlv_len(tlv_len(rl));
	if (mic)
		body += tlv_len(tlv_len(ml));
	/* tlv_len's 3-byte headers cover 64 KiB; SPNEGO_MAX_TOKEN is far less. */
	if (tlv_len(body) >= 0x10000)
		return -EINVAL;

	start = out->len;
	if ((r = put_hdr(out, CTX(1), tlv_len(body))) < 0 || (r = put_hdr(out, TAG_SEQ, body)) < 0)
		goto out;
	if (neg_state >= 0) {
		unsigned char e[5] = { CTX(0), 3, TAG_ENUM, 1, (unsigned char)neg_state };
		if ((r = buf_append(out, e, sizeof e)) < 0)
			goto out;
	}
	if (with_ntlm_mech &&
	    ((r = put_hdr(out, CTX(1), tlv_len(sizeof oid_ntlm))) < 0 ||
	     (r = put_hdr(out, TAG_OID, sizeof oid_ntlm)) < 0 ||
	     (r = buf_append(out, oid_ntlm, sizeof oid_ntlm)) < 0))
		goto out;
	if (resp_tok && (r = put_octets(out, 2, resp_tok, rl)) < 0)
		goto out;
	if (mic && (r = put_octets(out, 3, mic, ml)) < 0)
		goto out;
	return 0;
out:
	out->len = start;
	return r;
}
