/*
 * tls.h - certificate and key files for HTTPS listeners (monitor, tools).
 *
 * The monitor reads key files as root and hands the PEM to the worker over
 * IPC; the worker never opens a key file.  Keys readable by group or others
 * are refused, as sshd refuses loose host keys.
 */
#ifndef WINRMD_TLS_H
#define WINRMD_TLS_H

#include <stddef.h>

/* Read a PEM file (at most TLS_MAX_PEM).  With is_key, refuse loose modes. */
int tls_read_pem(const char *path, int is_key, char **out, size_t *outlen, char *err, size_t errlen);
/*
 * Write a self-signed RSA certificate (SAN: host name, FQDN, the given
 * addresses; EKU serverAuth) and its key (mode 0600).  Directories are
 * created 0755.  bits: 2048..8192; days of validity.
 */
int tls_generate_self_signed(const char *cert_path, const char *key_path, int bits, int days,
    const char *const *extra_names, char *err, size_t errlen);
/* Seconds until the certificate expires (negative if expired), or -errno-ish INT64_MIN on error. */
long long tls_cert_seconds_left(const char *cert_path);

#endif
