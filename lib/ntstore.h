/*
 * ntstore.h - the root-only store of NT password hashes for NTLM (monitor,
 * winrmctl).
 *
 * /etc/shadow holds crypt() hashes, from which NTLM cannot be verified, so
 * users who want NTLM (Windows' default outside a domain) get an NT hash set
 * with `winrmctl ntlm set-password USER`.  One line per user:
 *     user:<32 hex digits of MD4(UTF-16LE(password))>
 * The file must be a regular file owned by root with mode 0600.
 */
#ifndef WINRMD_NTSTORE_H
#define WINRMD_NTSTORE_H

#include <stdbool.h>

#define NTSTORE_MAX_FILE (4 * 1024 * 1024)

/* 0 and the hash; -ENOENT if the user has none; -EPERM if the file is unsafe. */
int ntstore_lookup(const char *path, const char *user, unsigned char hash[16]);
/* Set (hash != NULL) or remove (hash == NULL) a user's entry, atomically. */
int ntstore_update(const char *path, const char *user, const unsigned char *hash);
/* Call fn for each user name in the store. */
int ntstore_list(const char *path, void (*fn)(const char *user, void *data), void *data);

#endif
