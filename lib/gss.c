/*
 * gss.c - Kerberos acceptance (monitor) and wrap/unwrap (worker) with MIT
 * GSSAPI.
 *
 * WinRM seals with the IOV form of gss_wrap: the token header travels
 * separately from the encrypted data, length-prefixed (MS-WSMV 2.2.9.1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "gss.h"
#include "log.h"

static const unsigned char krb5_oid[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02 };
static const unsigned char krb5_oid_ms[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02 };

bool gss_is_krb5_token(const unsigned char *t, size_t n)
{
	size_t off = 2;

	if (n < 2 + sizeof krb5_oid || t[0] != 0x60)
		return false;
	if (t[1] & 0x80)
		off += t[1] & 0x7f;     /* long-form length */
	if (off + sizeof krb5_oid > n)
		return false;
	return !memcmp(t + off, krb5_oid, sizeof krb5_oid) ||
	    !memcmp(t + off, krb5_oid_ms, sizeof krb5_oid_ms);
}

static void status_text(OM_uint32 major, OM_uint32 minor, char *out, size_t len)
{
	OM_uint32 mn, ctx = 0;
	gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
	size_t o = 0;

	out[0] = '\0';
	gss_display_status(&mn, major, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &b);
	o += (size_t)snprintf(out + o, len - o, "%.*s", (int)b.length, (char *)b.value);
	gss_release_buffer(&mn, &b);
	ctx = 0;
	if (minor && o < len) {
		gss_display_status(&mn, minor, GSS_C_MECH_CODE, GSS_C_NO_OID, &ctx, &b);
		snprintf(out + o, len - o, ": %.*s", (int)b.length, (char *)b.value);
		gss_release_buffer(&mn, &b);
	}
}

int gss_accept(const char *keytab, const unsigned char *tok, size_t n,
    const unsigned char *cb, size_t cblen, bool require_cb, char **local_user,
    struct buf *out_token, struct buf *exported, char *why, size_t whylen)
{
	OM_uint32 major, minor, flags = 0;
	gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
	gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
	gss_name_t src = GSS_C_NO_NAME;
	gss_buffer_desc in = { n, (void *)tok }, out = GSS_C_EMPTY_BUFFER, lname = GSS_C_EMPTY_BUFFER;
	gss_buffer_desc exp = GSS_C_EMPTY_BUFFER;
	struct gss_channel_bindings_struct cbs;
	int r = -EACCES;

	*local_user = NULL;
	krb5_gss_register_acceptor_identity(keytab);
	major = gss_acquire_cred(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
	    GSS_C_ACCEPT, &cred, NULL, NULL);
	if (GSS_ERROR(major)) {
		status_text(major, minor, why, whylen);
		return -EIO;
	}
	memset(&cbs, 0, sizeof cbs);
	cbs.application_data.length = cblen;
	cbs.application_data.value = (void *)cb;
	major = gss_accept_sec_context(&minor, &ctx, cred, &in,
	    cblen ? &cbs : GSS_C_NO_CHANNEL_BINDINGS, &src, NULL, &out, &flags, NULL, NULL);
	if (major == GSS_S_CONTINUE_NEEDED) {
		/* One-leg Kerberos only; a multi-leg exchange would need state here. */
		snprintf(why, whylen, "the security context needs more than one leg");
		goto out;
	}
	if (GSS_ERROR(major)) {
		status_text(major, minor, why, whylen);
		goto out;
	}
	if (require_cb && !(flags & GSS_C_CHANNEL_BOUND_FLAG)) {
		snprintf(why, whylen, "no channel binding (CbtHardeningLevel = Strict)");
		goto out;
	}
	/* Principal -> local account by the krb5.conf auth_to_local rules, then .k5login. */
	major = gss_localname(&minor, src, GSS_C_NO_OID, &lname);
	if (GSS_ERROR(major) || !lname.length || lname.length > 256) {
		snprintf(why, whylen, "the principal maps to no local account");
		goto out;
	}
	*local_user = xstrndup(lname.value, lname.length);
	if (!gss_userok(src, *local_user)) {
		snprintf(why, whylen, "the principal may not log in as %s", *local_user);
		free(*local_user);
		*local_user = NULL;
		goto out;
	}
	buf_append(out_token, out.value, out.length);
	major = gss_export_sec_context(&minor, &ctx, &exp);
	if (GSS_ERROR(major)) {
		status_text(major, minor, why, whylen);
		free(*local_user);
		*local_user = NULL;
		goto out;
	}
	buf_append(exported, exp.value, exp.length);
	wipe(exp.value, exp.length);
	r = 0;
out:
	gss_release_buffer(&minor, &out);
	gss_release_buffer(&minor, &lname);
	gss_release_buffer(&minor, &exp);
	gss_release_name(&minor, &src);
	if (ctx != GSS_C_NO_CONTEXT)
		gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
	gss_release_cred(&minor, &cred);
	return r;
}

struct gss_sec {
	gss_ctx_id_t ctx;
};

int gss_sec_import(const unsigned char *c, size_t n, struct gss_sec **out)
{
	OM_uint32 major, minor;
	gss_buffer_desc b = { n, (void *)c };
	struct gss_sec *s = xcalloc(1, sizeof *s);

	major = gss_import_sec_context(&minor, &b, &s->ctx);
	if (GSS_ERROR(major)) {
		free(s);
		return -EINVAL;
	}
	*out = s;
	return 0;
}

void gss_sec_free(struct gss_sec *s)
{
	OM_uint32 minor;

	if (!s)
		return;
	gss_delete_sec_context(&minor, &s->ctx, GSS_C_NO_BUFFER);
	free(s);
}

int gss_sec_unwrap(struct gss_sec *s, const unsigned char *hdr, size_t hl,
    unsigned char *data, size_t dl, size_t *plain_len)
{
	gss_iov_buffer_desc iov[2];
	OM_uint32 major, minor;
	int conf = 0;

	iov[0].type = GSS_IOV_BUFFER_TYPE_HEADER;
	iov[0].buffer.length = hl;
	iov[0].buffer.value = (void *)hdr;
	iov[1].type = GSS_IOV_BUFFER_TYPE_DATA;
	iov[1].buffer.length = dl;
	iov[1].buffer.value = data;
	major = gss_unwrap_iov(&minor, s->ctx, &conf, NULL, iov, 2);
	/* Replays and reordering come back as supplementary bits, not errors: refuse them too. */
	if (major != GSS_S_COMPLETE || !conf)
		return -EACCES;
	*plain_len = iov[1].buffer.length;
	return 0;
}

int gss_sec_wrap(struct gss_sec *s, const unsigned char *data, size_t dl, struct buf *hdr,
    struct buf *sealed)
{
	gss_iov_buffer_desc iov[3];
	OM_uint32 major, minor;
	int conf = 0, r = -EIO;
	unsigned char *copy = xmalloc(dl ? dl : 1);

	memcpy(copy, data, dl);
	memset(iov, 0, sizeof iov);
	iov[0].type = GSS_IOV_BUFFER_TYPE_HEADER | GSS_IOV_BUFFER_FLAG_ALLOCATE;
	iov[1].type = GSS_IOV_BUFFER_TYPE_DATA;
	iov[1].buffer.length = dl;
	iov[1].buffer.value = copy;
	iov[2].type = GSS_IOV_BUFFER_TYPE_PADDING | GSS_IOV_BUFFER_FLAG_ALLOCATE;
	major = gss_wrap_iov(&minor, s->ctx, 1, GSS_C_QOP_DEFAULT, &conf, iov, 3);
	if (!GSS_ERROR(major) && conf) {
		buf_append(hdr, iov[0].buffer.value, iov[0].buffer.length);
		buf_append(sealed, copy, dl);
		buf_append(sealed, iov[2].buffer.value, iov[2].buffer.length);
		r = 0;
	}
	gss_release_iov_buffer(&minor, iov, 3);
	free(copy);
	return r;
}
