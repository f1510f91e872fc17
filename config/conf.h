/*
 * conf.h - the configuration model of winrmd.
 *
 * Used by the monitor (which reads the files), the worker (which receives the
 * dumped text over IPC and parses it with the same code) and winrmctl.  One
 * declarative table in conf.c drives parsing, defaults, validation and
 * dumping, so a key exists in exactly one place.
 */
#ifndef WINRMD_CONF_H
#define WINRMD_CONF_H

#include <stdbool.h>
#include <stdio.h>

#include "wlimits.h"

#define CONF_DEFAULT_PATH "/etc/winrmd/winrmd.conf"
#define CONF_DEFAULT_CERT "/etc/winrmd/tls/winrmd.crt"
#define CONF_DEFAULT_KEY  "/etc/winrmd/tls/winrmd.key"

enum conf_transport { CONF_HTTP = 0, CONF_HTTPS = 1 };
enum conf_cbt { CONF_CBT_NONE = 0, CONF_CBT_RELAXED = 1, CONF_CBT_STRICT = 2 };

struct conf_service {
	bool allow_unencrypted;
	unsigned long long max_envelope_kb;
	unsigned long long max_timeout_ms;
	unsigned long long max_batch_items;
	unsigned long long max_ops_per_user;
	unsigned long long max_connections;
	unsigned long long max_connections_per_ip;
	char *allowed_groups;           /* space-separated words */
	char *allowed_users;
	bool unauth_identify;
	char *pam_service;
	char *control_socket;
};

struct conf_auth {
	bool basic, negotiate, kerberos, certificate;
	int cbt_level;                  /* enum conf_cbt */
	char *keytab;
	char *ntlm_store;
	char *ca_file;
};

struct conf_winrs {
	bool allow_remote_shell;
	unsigned long long idle_timeout_ms;
	unsigned long long max_shells_per_user;
	unsigned long long max_users;
	unsigned long long max_procs_per_shell;
	unsigned long long max_memory_mb;
	unsigned long long max_shell_runtime_ms;
};

struct conf_listener {
	char *name;
	int transport;                  /* enum conf_transport */
	char *address;                  /* "*" or a literal IPv4/IPv6 address */
	unsigned long long port;        /* 0 in the file = default for transport */
	char *cert_file, *key_file;
	bool enabled;
	int line;                       /* where it was defined, for messages */
};

enum conf_protocol { CONF_PROTO_PSRP = 0, CONF_PROTO_WINRS = 1 };
enum conf_buffering { CONF_BUF_BLOCK = 0, CONF_BUF_DROP = 1 };

/* A session configuration: sessions.d/<Name>.conf, like Register-PSSessionConfiguration. */
struct conf_session {
	char *name;
	char *resource_uri;             /* default http://schemas.microsoft.com/powershell/<Name> */
	int protocol;                   /* enum conf_protocol */
	char *command;                  /* runspace program and arguments */
	char *configuration_file;       /* a .pssc handed to pwsh */
	char *allowed_users, *allowed_groups;   /* NULL in the file = the service's */
	char *run_as_user;
	bool enabled;
	unsigned long long max_shells_per_user;
	unsigned long long idle_timeout_ms, max_idle_timeout_ms;
	int output_buffering;           /* enum conf_buffering */
	unsigned long long max_recv_data_mb, max_recv_object_mb;
	int line;
	char *file;                     /* where it was defined, for messages */
};

/* [CertMapping NAME]: a client certificate that logs in as a local user. */
struct conf_certmap {
	char *name;
	char *subject;                  /* subject DN (RFC 2253), CN, UPN/email SAN, or * */
	char *issuer;                   /* issuer DN (RFC 2253), or empty for any trusted one */
	char *user;                     /* the local account */
	bool enabled;
	int line;
};

struct conf {
	char *path;                     /* file it was read from, or "(embedded)" */
	struct conf_service service;
	struct conf_auth auth;
	struct conf_winrs winrs;
	struct conf_listener listeners[CONF_MAX_LISTENERS];
	size_t n_listeners;
	struct conf_session sessions[CONF_MAX_SESSIONS];
	size_t n_sessions;
	struct conf_certmap certmaps[CONF_MAX_CERTMAPS];
	size_t n_certmaps;
};

/*
 * Parse text (`name` is used in messages).  On error returns -EINVAL and
 * writes "file:line: key: reason" into err.  The result is validated.
 */
int conf_parse(const char *text, size_t len, const char *name, struct conf *c,
    char *err, size_t errlen);
/* Read and parse a file and the sessions.d/ beside it; a missing file is -ENOENT. */
int conf_load(const char *path, struct conf *c, char *err, size_t errlen);
/* The embedded default: HTTP 127.0.0.1:5985 and HTTPS 127.0.0.1:5986. */
int conf_load_embedded(struct conf *c);
const char *conf_pwsh_path(void);
/*
 * How a PowerShell configuration runs pwsh.  SSH server mode (-sshs) speaks
 * the same out-of-process protocol as -s but writes pwsh's own remoting
 * errors in band, on stdout, so the bridge can tell them from what the
 * processes pwsh starts write to its stderr.
 */
#define CONF_PWSH_ARGS "-NoLogo -NoProfile -sshs"
/* The embedded default with the sessions.d/ beside path (none if it is
 * missing) and the built-in ones: what winrmctl shows when path does not exist. */
int conf_load_default(const char *path, struct conf *c, char *err, size_t errlen);
void conf_free(struct conf *c);

/* Effective configuration in a form conf_parse accepts back unchanged. */
char *conf_dump(const struct conf *c);

const char *conf_transport_name(int t);
/* The session configuration serving a resource URI (case-insensitive), or NULL. */
const struct conf_session *conf_session_by_uri(const struct conf *c, const char *uri);
const struct conf_session *conf_session_by_name(const struct conf *c, const char *name);
/* true if the (space-separated) list contains word (case-sensitive, like names). */
bool conf_list_has(const char *list, const char *word);
/* Split a list into words; returns count, fills up to max pointers into a copy. */
size_t conf_list_split(const char *list, char *copy, size_t copylen, char **words, size_t max);

/* Set one key (as winrmctl config set does), validated by the same table. */
int conf_set_value(struct conf *c, const char *section, const char *key,
    const char *value, char *err, size_t errlen);
/* Read one key's value as dumped. Returns malloc'ed string or NULL. */
char *conf_get_value(const struct conf *c, const char *section, const char *key);

#endif
