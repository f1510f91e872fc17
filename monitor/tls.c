/*
 * tls.c - read and create certificate/key files (monitor, enable-remoting).
 *
 * Generation uses OpenSSL's X509 API directly; the key never leaves this
 * process except written 0600 to disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "wlimits.h"
#include "tls.h"
#include "util.h"

int tls_read_pem(const char *path, int is_key, char **out, size_t *outlen, char *err, size_t errlen)
{
	struct stat st;
	char *data;
	ssize_t n;
	int fd, r;

	/* Symlinks are fine (certbot's live/ links); the mode of the target is what counts. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	/* Whoever owns the key can swap it, or read it by changing the mode back. */
	if (is_key && st.st_uid != 0 && st.st_uid != geteuid()) {
		close(fd);
		snprintf(err, errlen, "%s: key file is owned by uid %u, not root; run chown root %s",
		    path, (unsigned)st.st_uid, path);
		return -EPERM;
	}
	if (is_key && (st.st_mode & 077)) {
		close(fd);
		snprintf(err, errlen, "%s: key file is accessible by group or others (mode %03o); "
		    "run chmod 600 %s", path, (unsigned)(st.st_mode & 0777), path);
		return -EPERM;
	}
	if (st.st_size <= 0 || st.st_size > TLS_MAX_PEM) {
		close(fd);
		snprintf(err, errlen, "%s: size %lld outside 1..%d bytes", path,
		    (long long)st.st_size, TLS_MAX_PEM);
		return -EFBIG;
	}
	data = xmalloc((size_t)st.st_size + 1);
	n = read(fd, data, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		freezero(data, (size_t)st.st_size + 1);
		snprintf(err, errlen, "%s: short read", path);
		return -EIO;
	}
	data[n] = '\0';
	*out = data;
	*outlen = (size_t)n;
	return 0;
}

static int mkdir_parents(const char *path)
{
	char tmp[PATH_MAX];
	char *p;

	snprintf(tmp, sizeof tmp, "%s", path);
	p = strrchr(tmp, '/');
	if (!p || p == tmp)
		return 0;
	*p = '\0';
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	/* The directory that holds a key is root's alone. */
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static void add_san(GENERAL_NAMES *gens, const char *name)
{
	unsigned char ip[16];
	GENERAL_NAME *g = GENERAL_NAME_new();
	int iplen = 0;

	if (inet_pton(AF_INET, name, ip) == 1)
		iplen = 4;
	else if (inet_pton(AF_INET6, name, ip) == 1)
		iplen = 16;
	if (iplen) {
		ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
		ASN1_OCTET_STRING_set(os, ip, iplen);
		GENERAL_NAME_set0_value(g, GEN_IPADD, os);
	} else {
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		ASN1_STRING_set(s, name, (int)strlen(name));
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
	}
	sk_GENERAL_NAME_push(gens, g);
}

int tls_generate_self_signed(const char *cert_path, const char *key_path, int bits, int days,
    const char *const *extra_names, char *err, size_t errlen)
{
	char host[256] = "localhost", fqdn[NI_MAXHOST] = "";
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_NAME *nm;
	GENERAL_NAMES *gens = NULL;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	FILE *f = NULL;
	int fd = -1, r = -EIO;
	char tmpk[PATH_MAX], tmpc[PATH_MAX];

	gethostname(host, sizeof host - 1);
	{
		struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *ai = NULL;
		if (getaddrinfo(host, NULL, &hints, &ai) == 0 && ai && ai->ai_canonname)
			snprintf(fqdn, sizeof fqdn, "%s", ai->ai_canonname);
		if (ai)
			freeaddrinfo(ai);
	}
	if (mkdir_parents(cert_path) < 0 || mkdir_parents(key_path) < 0) {
		snprintf(err, errlen, "cannot create directory for %s: %s", cert_path, strerror(errno));
		return -errno;
	}
	pkey = EVP_RSA_gen((unsigned)bits);
	x = X509_new();
	if (!pkey || !x)
		goto out;
	X509_set_version(x, 2);
	random_bytes(serial, sizeof serial);
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof serial, NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
	X509_set_pubkey(x, pkey);
	nm = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)(fqdn[0] ? fqdn : host), -1, -1, 0);
	X509_set_issuer_name(x, nm);

	gens = sk_GENERAL_NAME_new_null();
	add_san(gens, host);
	if (fqdn[0] && strcmp(fqdn, host))
		add_san(gens, fqdn);
	add_san(gens, "localhost");
	add_san(gens, "127.0.0.1");
	add_san(gens, "::1");
	for (size_t i = 0; extra_names && extra_names[i]; i++)
		add_san(gens, extra_names[i]);
	ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	static const struct { int nid; const char *val; } exts[] = {
		{ NID_basic_constraints, "critical,CA:FALSE" },
		{ NID_key_usage, "critical,digitalSignature,keyEncipherment" },
		{ NID_ext_key_usage, "serverAuth" },
		{ NID_subject_key_identifier, "hash" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(exts); i++) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid, exts[i].val);
		if (!ext)
			goto out;
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (!X509_sign(x, pkey, EVP_sha256()))
		goto out;

	/* Write both under temporary names, then rename: never a half-written key. */
	snprintf(tmpk, sizeof tmpk, "%s.tmp", key_path);
	snprintf(tmpc, sizeof tmpc, "%s.tmp", cert_path);
	fd = open(tmpk, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fchmod(fd, 0600) < 0 || !(f = fdopen(fd, "w")))
		goto out;
	fd = -1;
	if (!PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) || fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = fopen(tmpc, "we");
	if (!f || !PEM_write_X509(f, x) || fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = NULL;
	chmod(tmpc, 0644);
	if (rename(tmpk, key_path) < 0 || rename(tmpc, cert_path) < 0)
		goto out;
	r = 0;
out:
	if (r < 0)
		snprintf(err, errlen, "cannot create self-signed certificate %s: %s", cert_path,
		    errno ? strerror(errno) : "OpenSSL error");
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return r;
}

long long tls_cert_seconds_left(const char *cert_path)
{
	FILE *f = fopen(cert_path, "re");
	X509 *x;
	int days = 0, secs = 0;

	if (!f)
		return LLONG_MIN;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		return LLONG_MIN;
	if (!ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x))) {
		X509_free(x);
		return LLONG_MIN;
	}
	X509_free(x);
	return (long long)days * 86400 + secs;
}
