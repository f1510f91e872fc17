/*
 * mon_cert.c - client-certificate logins (monitor).
 *
 * The worker's TLS stack already asked for and checked the certificate,
 * but the worker is not trusted: the monitor verifies the chain again
 * against CAFile with OpenSSL, for the TLS-client purpose, and only then
 * looks the certificate up in the [CertMapping] sections.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "conf.h"
#include "log.h"
#include "mon.h"
#include "util.h"

static void name_rfc2253(X509_NAME *n, char *out, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int k;

	out[0] = '\0';
	if (!b)
		return;
	X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	k = BIO_read(b, out, (int)len - 1);
	out[k > 0 ? k : 0] = '\0';
	BIO_free(b);
}

/* CN, UPN (1.3.6.1.4.1.311.20.2.3) and e-mail names of the subject. */
static bool subject_matches(X509 *x, const char *dn, const char *want)
{
	char cn[256];
	GENERAL_NAMES *sans;
	bool ok = false;

	if (!strcmp(want, "*") || !strcasecmp(want, dn))
		return true;
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) > 0 &&
	    !strcasecmp(want, cn))
		return true;
	sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && !ok; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		const ASN1_STRING *s = NULL;

		if (g->type == GEN_EMAIL)
			s = g->d.rfc822Name;
		else if (g->type == GEN_OTHERNAME &&
		    OBJ_obj2nid(g->d.otherName->type_id) == NID_ms_upn &&
		    g->d.otherName->value->type == V_ASN1_UTF8STRING)
			s = g->d.otherName->value->value.utf8string;
		if (s && (size_t)ASN1_STRING_length(s) == strlen(want) &&
		    !strncasecmp((const char *)ASN1_STRING_get0_data(s), want, strlen(want)))
			ok = true;
	}
	GENERAL_NAMES_free(sans);
	return ok;
}

int mon_cert_map(const struct conf *c, const unsigned char *const *der, const size_t *len,
    size_t n, char **user, char *why, size_t whylen)
{
	STACK_OF(X509) *chain = sk_X509_new_null();
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *leaf = NULL;
	char subj[1024], iss[1024];
	int r = -EACCES;

	*user = NULL;
	if (!chain || !store || !ctx || n == 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = der[i];
		X509 *x = d2i_X509(NULL, &p, (long)len[i]);
		if (!x || p != der[i] + len[i]) {
			X509_free(x);
			snprintf(why, whylen, "malformed certificate");
			goto out;
		}
		if (i == 0)
			leaf = x;
		else
			sk_X509_push(chain, x);
	}
	if (!*c->auth.ca_file || X509_STORE_load_file(store, c->auth.ca_file) != 1) {
		snprintf(why, whylen, "cannot load CAFile %s", c->auth.ca_file);
		r = -EIO;
		goto out;
	}
	X509_STORE_CTX_init(ctx, store, leaf, chain);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	if (X509_verify_cert(ctx) != 1) {
		snprintf(why, whylen, "certificate not trusted: %s",
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	name_rfc2253(X509_get_subject_name(leaf), subj, sizeof subj);
	name_rfc2253(X509_get_issuer_name(leaf), iss, sizeof iss);
	for (size_t i = 0; i < c->n_certmaps; i++) {
		const struct conf_certmap *m = &c->certmaps[i];
		if (!m->enabled || (*m->issuer && strcasecmp(m->issuer, iss)))
			continue;
		if (subject_matches(leaf, subj, m->subject)) {
			*user = xstrdup(m->user);
			r = 0;
			goto out;
		}
	}
	snprintf(why, whylen, "no [CertMapping] for subject \"%s\" issued by \"%s\"", subj, iss);
out:
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return r;
}
