/*
 * conf.c - parse, validate and dump winrmd.conf (monitor, worker, winrmctl).
 *
 * The table `conf_keys` below is the only place a key is defined: its type,
 * default and range.  Defaults are applied by parsing the default strings
 * through the same setters a file goes through, so a default can never be a
 * value the parser would refuse, and `winrmd -T` output parses back to
 * itself (tested in tests/unit).
 *
 * Over 900 lines on purpose: the key table, the setters it names and the
 * validation of what they set are one contract with winrmd.conf(5); split,
 * a key could be added in one place and forgotten in another.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <dirent.h>
#include <limits.h>
#include <stddef.h>
#include <strings.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf.h"
#include "util.h"

enum sec { SEC_SERVICE, SEC_AUTH, SEC_WINRS, SEC_LISTENER, SEC_SESSION, SEC_CERTMAP, SEC_NONE };
enum ktype { KT_BOOL, KT_UINT, KT_STR, KT_PATH, KT_LIST, KT_ENUM, KT_ADDR };

static const char *const sec_names[] = { "Service", "Service/Auth", "Winrs", "Listener", "SessionConfiguration", "CertMapping" };
static const char *const transport_names[] = { "HTTP", "HTTPS", NULL };
static const char *const cbt_names[] = { "None", "Relaxed", "Strict", NULL };
static const char *const proto_names[] = { "psrp", "winrs", NULL };
static const char *const buffering_names[] = { "Block", "Drop", NULL };

struct conf_key {
	enum sec sec;
	const char *name;
	enum ktype type;
	size_t off;
	const char *def;
	unsigned long long min, max;
	const char *const *enums;
};

#define U32MAX 2147483647ULL
/* A default kept in wlimits.h, as the text the key table holds. */
#define CONF_STR_(x) #x
#define CONF_STR(x) CONF_STR_(x)
#define SV(f) offsetof(struct conf_service, f)
#define AU(f) offsetof(struct conf_auth, f)
#define WR(f) offsetof(struct conf_winrs, f)
#define LS(f) offsetof(struct conf_listener, f)
#define SC(f) offsetof(struct conf_session, f)
#define CM(f) offsetof(struct conf_certmap, f)

static const struct conf_key conf_keys[] = {
	{ SEC_SERVICE, "AllowUnencrypted", KT_BOOL, SV(allow_unencrypted), "false", 0, 0, NULL },
	{ SEC_SERVICE, "MaxEnvelopeSizekb", KT_UINT, SV(max_envelope_kb), "500", 32, 65536, NULL },
	{ SEC_SERVICE, "MaxTimeoutms", KT_UINT, SV(max_timeout_ms), "60000", 500, U32MAX, NULL },
	{ SEC_SERVICE, "MaxBatchItems", KT_UINT, SV(max_batch_items), "32000", 1, U32MAX, NULL },
	{ SEC_SERVICE, "MaxConcurrentOperationsPerUser", KT_UINT, SV(max_ops_per_user), "1500", 1, U32MAX, NULL },
	{ SEC_SERVICE, "MaxConnections", KT_UINT, SV(max_connections), "300", 1, 65535, NULL },
	{ SEC_SERVICE, "MaxConnectionsPerIP", KT_UINT, SV(max_connections_per_ip),
	  CONF_STR(HTTP_PER_IP_CONN_LIMIT), 1, 65535, NULL },
	{ SEC_SERVICE, "AllowedGroups", KT_LIST, SV(allowed_groups), "sudo wheel winrm-users", 0, 0, NULL },
	{ SEC_SERVICE, "AllowedUsers", KT_LIST, SV(allowed_users), "", 0, 0, NULL },
	{ SEC_SERVICE, "EnableUnauthenticatedIdentify", KT_BOOL, SV(unauth_identify), "true", 0, 0, NULL },
	{ SEC_SERVICE, "PamService", KT_STR, SV(pam_service), "winrmd", 0, 0, NULL },
	{ SEC_SERVICE, "ControlSocket", KT_PATH, SV(control_socket), "/run/winrmd/control", 0, 0, NULL },

	{ SEC_AUTH, "Basic", KT_BOOL, AU(basic), "true", 0, 0, NULL },
	{ SEC_AUTH, "Negotiate", KT_BOOL, AU(negotiate), "true", 0, 0, NULL },
	{ SEC_AUTH, "Kerberos", KT_BOOL, AU(kerberos), "true", 0, 0, NULL },
	{ SEC_AUTH, "Certificate", KT_BOOL, AU(certificate), "false", 0, 0, NULL },
	{ SEC_AUTH, "CbtHardeningLevel", KT_ENUM, AU(cbt_level), "Relaxed", 0, 0, cbt_names },
	{ SEC_AUTH, "Keytab", KT_PATH, AU(keytab), "/etc/krb5.keytab", 0, 0, NULL },
	{ SEC_AUTH, "NtlmStore", KT_PATH, AU(ntlm_store), "/etc/winrmd/ntlm.db", 0, 0, NULL },
	{ SEC_AUTH, "CAFile", KT_PATH, AU(ca_file), "", 0, 0, NULL },

	{ SEC_WINRS, "AllowRemoteShellAccess", KT_BOOL, WR(allow_remote_shell), "true", 0, 0, NULL },
	{ SEC_WINRS, "IdleTimeout", KT_UINT, WR(idle_timeout_ms), "7200000", 1000, U32MAX, NULL },
	{ SEC_WINRS, "MaxShellsPerUser", KT_UINT, WR(max_shells_per_user), "30", 1, U32MAX, NULL },
	{ SEC_WINRS, "MaxConcurrentUsers", KT_UINT, WR(max_users), "10", 1, U32MAX, NULL },
	{ SEC_WINRS, "MaxProcessesPerShell", KT_UINT, WR(max_procs_per_shell), "25", 1, U32MAX, NULL },
	{ SEC_WINRS, "MaxMemoryPerShellMB", KT_UINT, WR(max_memory_mb), "1024", 1, U32MAX, NULL },
	{ SEC_WINRS, "MaxShellRunTime", KT_UINT, WR(max_shell_runtime_ms), "2147483647", 1000, U32MAX, NULL },

	{ SEC_LISTENER, "Transport", KT_ENUM, LS(transport), "HTTP", 0, 0, transport_names },
	{ SEC_LISTENER, "Address", KT_ADDR, LS(address), "*", 0, 0, NULL },
	{ SEC_LISTENER, "Port", KT_UINT, LS(port), "0", 0, 65535, NULL },
	{ SEC_LISTENER, "CertificateFile", KT_PATH, LS(cert_file), "", 0, 0, NULL },
	{ SEC_LISTENER, "KeyFile", KT_PATH, LS(key_file), "", 0, 0, NULL },
	{ SEC_LISTENER, "Enabled", KT_BOOL, LS(enabled), "true", 0, 0, NULL },

	/* NULL defaults: set in the file, or filled in by conf_validate. */
	{ SEC_SESSION, "Name", KT_STR, SC(name), NULL, 0, 0, NULL },
	{ SEC_SESSION, "ResourceURI", KT_STR, SC(resource_uri), NULL, 0, 0, NULL },
	{ SEC_SESSION, "Protocol", KT_ENUM, SC(protocol), "psrp", 0, 0, proto_names },
	{ SEC_SESSION, "Command", KT_STR, SC(command), "pwsh " CONF_PWSH_ARGS, 0, 0, NULL },
	{ SEC_SESSION, "ConfigurationFile", KT_PATH, SC(configuration_file), "", 0, 0, NULL },
	{ SEC_SESSION, "AllowedUsers", KT_LIST, SC(allowed_users), NULL, 0, 0, NULL },
	{ SEC_SESSION, "AllowedGroups", KT_LIST, SC(allowed_groups), NULL, 0, 0, NULL },
	{ SEC_SESSION, "RunAsUser", KT_STR, SC(run_as_user), "", 0, 0, NULL },
	{ SEC_SESSION, "Enabled", KT_BOOL, SC(enabled), "true", 0, 0, NULL },
	{ SEC_SESSION, "MaxShellsPerUser", KT_UINT, SC(max_shells_per_user), "25", 1, U32MAX, NULL },
	{ SEC_SESSION, "IdleTimeoutMs", KT_UINT, SC(idle_timeout_ms), "7200000", 1000, U32MAX, NULL },
	{ SEC_SESSION, "MaxIdleTimeoutMs", KT_UINT, SC(max_idle_timeout_ms), "2147483647", 1000, U32MAX, NULL },
	{ SEC_SESSION, "OutputBufferingMode", KT_ENUM, SC(output_buffering), "Block", 0, 0, buffering_names },
	{ SEC_SESSION, "MaxReceivedDataSizePerCommandMB", KT_UINT, SC(max_recv_data_mb), "50", 1, 4096, NULL },
	{ SEC_SESSION, "MaxReceivedObjectSizeMB", KT_UINT, SC(max_recv_object_mb), "10", 1, 4096, NULL },

	{ SEC_CERTMAP, "Subject", KT_STR, CM(subject), "", 0, 0, NULL },
	{ SEC_CERTMAP, "Issuer", KT_STR, CM(issuer), "", 0, 0, NULL },
	{ SEC_CERTMAP, "User", KT_STR, CM(user), "", 0, 0, NULL },
	{ SEC_CERTMAP, "Enabled", KT_BOOL, CM(enabled), "true", 0, 0, NULL },
};

static const char conf_embedded_text[] =
	"# The embedded default: loopback only, so a fresh `make run` exposes\n"
	"# nothing to the network.\n"
	"[Listener http]\nTransport = HTTP\nAddress = 127.0.0.1\nPort = 5985\n"
	"[Listener https]\nTransport = HTTPS\nAddress = 127.0.0.1\nPort = 5986\n";

const char *conf_transport_name(int t)
{
	return t == CONF_HTTPS ? "HTTPS" : "HTTP";
}

static void *key_ptr(struct conf *c, void *l, const struct conf_key *k)
{
	char *base;

	switch (k->sec) {
	case SEC_SERVICE: base = (char *)&c->service; break;
	case SEC_AUTH: base = (char *)&c->auth; break;
	case SEC_WINRS: base = (char *)&c->winrs; break;
	case SEC_LISTENER:
	case SEC_SESSION:
	case SEC_CERTMAP: base = (char *)l; break;
	default: return NULL;
	}
	return base + k->off;
}

static bool word_ok(const char *w)
{
	if (!*w || strlen(w) > 64)
		return false;
	for (; *w; w++)
		if (!isalnum((unsigned char)*w) && !strchr("._-@$", *w))
			return false;
	return true;
}

/* Normalise a list (spaces or commas) into single-space-separated words. */
static int list_normalise(const char *in, char **out)
{
	struct buf b;
	char *copy = xstrdup(in), *save = NULL, *w;
	size_t n = 0;
	int r = 0;

	buf_init(&b, 0);
	for (w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
		if (!word_ok(w) || ++n > CONF_MAX_LIST) {
			r = -EINVAL;
			break;
		}
		if (b.len)
			buf_appends(&b, " ");
		buf_appends(&b, w);
	}
	free(copy);
	if (r < 0) {
		buf_free(&b);
		return r;
	}
	*out = xstrdup(buf_str(&b));
	buf_free(&b);
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	if (str_ieq(v, "true") || str_ieq(v, "yes") || str_ieq(v, "on") || !strcmp(v, "1"))
		*out = true;
	else if (str_ieq(v, "false") || str_ieq(v, "no") || str_ieq(v, "off") || !strcmp(v, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static bool addr_ok(const char *v)
{
	unsigned char tmp[16];

	return !strcmp(v, "*") || inet_pton(AF_INET, v, tmp) == 1 || inet_pton(AF_INET6, v, tmp) == 1;
}

/* Apply one value; on failure describe the problem in why. */
static int key_set(struct conf *c, void *l, const struct conf_key *k,
    const char *v, char *why, size_t whylen)
{
	void *p = key_ptr(c, l, k);
	unsigned long long u;
	char **sp = p;
	int r;

	switch (k->type) {
	case KT_BOOL:
		if (parse_bool(v, p) < 0) {
			snprintf(why, whylen, "expected true or false, got \"%s\"", v);
			return -EINVAL;
		}
		return 0;
	case KT_UINT:
		r = parse_uint(v, k->min, k->max, &u);
		if (r < 0) {
			snprintf(why, whylen, "expected a whole number from %llu to %llu, got \"%s\"",
			    k->min, k->max, v);
			return r;
		}
		*(unsigned long long *)p = u;
		return 0;
	case KT_ENUM:
		for (int i = 0; k->enums[i]; i++)
			if (str_ieq(v, k->enums[i])) {
				*(int *)p = i;
				return 0;
			}
		snprintf(why, whylen, "unknown value \"%s\"", v);
		return -EINVAL;
	case KT_PATH:
		if (*v && *v != '/') {
			snprintf(why, whylen, "expected an absolute path, got \"%s\"", v);
			return -EINVAL;
		}
		/* A value must survive the dump: no newline, no comment character. */
		for (const char *q = v; *q; q++)
			if ((unsigned char)*q < 0x20 || *q == '#') {
				snprintf(why, whylen, "control character or # in path");
				return -EINVAL;
			}
		free(*sp);
		*sp = xstrdup(v);
		return 0;
	case KT_ADDR:
		if (!addr_ok(v)) {
			snprintf(why, whylen, "expected * or an IPv4/IPv6 address, got \"%s\"", v);
			return -EINVAL;
		}
		free(*sp);
		*sp = xstrdup(v);
		return 0;
	case KT_STR:
		for (const char *s = v; *s; s++)
			if ((unsigned char)*s < 0x20 || *s == '#') {
				snprintf(why, whylen, "control character or # in value");
				return -EINVAL;
			}
		free(*sp);
		*sp = xstrdup(v);
		return 0;
	case KT_LIST: {
		char *n;
		if (list_normalise(v, &n) < 0) {
			snprintf(why, whylen, "expected names separated by spaces (letters, digits, ._-@$), got \"%s\"", v);
			return -EINVAL;
		}
		free(*sp);
		*sp = n;
		return 0;
	}
	}
	return -EINVAL;
}

static void key_format(struct conf *c, void *l, const struct conf_key *k,
    struct buf *out)
{
	void *p = key_ptr(c, l, k);

	switch (k->type) {
	case KT_BOOL:
		buf_appends(out, *(bool *)p ? "true" : "false");
		break;
	case KT_UINT:
		buf_appendf(out, "%llu", *(unsigned long long *)p);
		break;
	case KT_ENUM:
		buf_appends(out, k->enums[*(int *)p]);
		break;
	default:
		buf_appends(out, *(char **)p ? *(char **)p : "");
		break;
	}
}

static void apply_defaults(struct conf *c, enum sec sec, void *l)
{
	char why[256];

	for (size_t i = 0; i < ARRAY_SIZE(conf_keys); i++)
		if (conf_keys[i].sec == sec && conf_keys[i].def && key_set(c, l, &conf_keys[i],
		    conf_keys[i].def, why, sizeof why) < 0)
			abort(); /* a bad default is a programming error */
}

static const struct conf_key *key_find(enum sec sec, const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(conf_keys); i++)
		if (conf_keys[i].sec == sec && str_ieq(conf_keys[i].name, name))
			return &conf_keys[i];
	return NULL;
}

static bool listener_name_ok(const char *n)
{
	if (!*n || strlen(n) > 63)
		return false;
	for (; *n; n++)
		if (!isalnum((unsigned char)*n) && !strchr("._-", *n))
			return false;
	return true;
}

/* "*", 0.0.0.0 and :: all take the port on every address. */
static bool addr_any(const char *a)
{
	return !strcmp(a, "*") || !strcmp(a, "0.0.0.0") || !strcmp(a, "::");
}

static void conf_init(struct conf *c, const char *name)
{
	memset(c, 0, sizeof *c);
	c->path = xstrdup(name);
	apply_defaults(c, SEC_SERVICE, NULL);
	apply_defaults(c, SEC_AUTH, NULL);
	apply_defaults(c, SEC_WINRS, NULL);
}

#define FAIL(line, key, ...) do { \
	int _o = snprintf(err, errlen, "%s:%d: %s%s", name, (line), (key) ? (key) : "", (key) ? ": " : ""); \
	if (_o >= 0 && (size_t)_o < errlen) snprintf(err + _o, errlen - (size_t)_o, __VA_ARGS__); \
	r = -EINVAL; goto out; } while (0)

static int conf_validate(struct conf *c, const char *name, char *err, size_t errlen)
{
	int r = 0;

	for (size_t i = 0; i < c->n_listeners; i++) {
		struct conf_listener *l = &c->listeners[i];

		if (l->port == 0)
			l->port = l->transport == CONF_HTTPS ? 5986 : 5985;
		if (l->transport == CONF_HTTPS) {
			if (!*l->cert_file) {
				free(l->cert_file);
				l->cert_file = xstrdup(CONF_DEFAULT_CERT);
			}
			if (!*l->key_file) {
				free(l->key_file);
				l->key_file = xstrdup(CONF_DEFAULT_KEY);
			}
		}
		for (size_t j = 0; j < i; j++) {
			struct conf_listener *o = &c->listeners[j];
			if (l->enabled && o->enabled && l->port == o->port &&
			    (!strcmp(l->address, o->address) || addr_any(l->address) ||
			     addr_any(o->address)))
				FAIL(l->line, "Port", "listener %s overlaps listener %s (port %llu)",
				    l->name, o->name, l->port);
		}
	}
	if (!*c->service.pam_service || !word_ok(c->service.pam_service))
		FAIL(0, "PamService", "invalid PAM service name");
	for (size_t i = 0; i < c->n_certmaps; i++) {
		struct conf_certmap *cm = &c->certmaps[i];
		if (!*cm->subject)
			FAIL(cm->line, "Subject", "[CertMapping %s] needs a Subject (or *)", cm->name);
		if (!*cm->user || !word_ok(cm->user))
			FAIL(cm->line, "User", "[CertMapping %s] needs a local user name", cm->name);
	}
	if (c->auth.certificate && !*c->auth.ca_file)
		FAIL(0, "CAFile", "Certificate authentication needs CAFile, the CAs client certificates are checked against");
	for (size_t i = 0; i < c->n_sessions; i++) {
		struct conf_session *sc = &c->sessions[i];
#define SFAIL(key, ...) do { \
	int _o = snprintf(err, errlen, "%s:%d: %s: ", sc->file, sc->line, key); \
	if (_o >= 0 && (size_t)_o < errlen) snprintf(err + _o, errlen - (size_t)_o, __VA_ARGS__); \
	return -EINVAL; } while (0)
		if (!sc->name || !listener_name_ok(sc->name))
			SFAIL("Name", "a session configuration needs a name of letters, digits, . _ -");
		for (size_t j = 0; j < i; j++)
			if (str_ieq(c->sessions[j].name, sc->name))
				SFAIL("Name", "configuration %s is defined twice", sc->name);
		if (!sc->resource_uri || !*sc->resource_uri) {
			free(sc->resource_uri);
			sc->resource_uri = xasprintf("http://schemas.microsoft.com/powershell/%s", sc->name);
		}
		if (!*sc->command)
			SFAIL("Command", "empty");
		if (*sc->run_as_user && !word_ok(sc->run_as_user))
			SFAIL("RunAsUser", "invalid user name");
		if (sc->idle_timeout_ms > sc->max_idle_timeout_ms)
			SFAIL("IdleTimeoutMs", "larger than MaxIdleTimeoutMs");
		for (size_t j = 0; j < i; j++)
			if (str_ieq(c->sessions[j].resource_uri, sc->resource_uri))
				SFAIL("ResourceURI", "also served by %s", c->sessions[j].name);
		/* Who may connect: the service's lists unless the configuration has its own. */
		if (!sc->allowed_users)
			sc->allowed_users = xstrdup(c->service.allowed_users);
		if (!sc->allowed_groups)
			sc->allowed_groups = xstrdup(c->service.allowed_groups);
#undef SFAIL
	}
	{
		/* The worker gets the effective configuration as one IPC string: refuse it
		 * here, where -t and a reload report it, rather than when sending it. */
		char *dump = conf_dump(c);
		size_t dl = strlen(dump);
		free(dump);
		if (dl > CONF_MAX_DUMP)
			FAIL(0, NULL, "the effective configuration is %zu bytes (winrmd -T); at most %d "
			    "can be handed to the worker", dl, CONF_MAX_DUMP);
	}
out:
	return r;
}

/*
 * Parse one file into c.  A session file (sessions.d/NAME.conf) holds one
 * [SessionConfiguration] section and nothing else.
 */
static int parse_into(struct conf *c, const char *text, size_t len, const char *name,
    bool session_file, char *err, size_t errlen)
{
	enum sec cur = SEC_NONE;
	void *l = NULL;
	const char *p = text, *end = text + len;
	char line[CONF_MAX_LINE + 2], why[512];
	int lineno = 0, r = 0;

	if (len > CONF_MAX_FILE) {
		snprintf(err, errlen, "%s: file larger than %d bytes", name, CONF_MAX_FILE);
		r = -EFBIG;
		goto out;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *s, *hash, *eq, *key, *val;

		lineno++;
		if (n > CONF_MAX_LINE)
			FAIL(lineno, NULL, "line longer than %d bytes", CONF_MAX_LINE);
		if (memchr(p, '\0', n))
			FAIL(lineno, NULL, "NUL byte in line");
		memcpy(line, p, n);
		line[n] = '\0';
		p += n + (nl ? 1 : 0);

		if ((hash = strchr(line, '#')))
			*hash = '\0';
		s = str_trim(line);
		if (!*s)
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']'), *arg;
			if (!close || close[1])
				FAIL(lineno, NULL, "malformed section header");
			*close = '\0';
			s = str_trim(s + 1);
			arg = strpbrk(s, " \t");
			if (arg) {
				*arg++ = '\0';
				arg = str_trim(arg);
			}
			l = NULL;
			if (str_ieq(s, "SessionConfiguration")) {
				struct conf_session *sc;
				if (arg && !listener_name_ok(arg))
					FAIL(lineno, NULL, "[SessionConfiguration NAME] needs a name of letters, digits, . _ -");
				if (session_file && arg)
					FAIL(lineno, NULL, "a session file names its configuration with Name =");
				if (session_file && c->n_sessions && !strcmp(c->sessions[c->n_sessions - 1].file, name))
					FAIL(lineno, NULL, "a session file holds one [SessionConfiguration]");
				if (c->n_sessions >= CONF_MAX_SESSIONS)
					FAIL(lineno, NULL, "more than %d session configurations", CONF_MAX_SESSIONS);
				sc = &c->sessions[c->n_sessions++];
				sc->line = lineno;
				sc->file = xstrdup(name);
				apply_defaults(c, SEC_SESSION, sc);
				if (arg)
					sc->name = xstrdup(arg);
				l = sc;
				cur = SEC_SESSION;
				continue;
			}
			if (session_file)
				FAIL(lineno, NULL, "a session file holds only [SessionConfiguration]");
			if (str_ieq(s, "CertMapping")) {
				struct conf_certmap *cm;
				if (!arg || !listener_name_ok(arg))
					FAIL(lineno, NULL, "[CertMapping NAME] needs a name of letters, digits, . _ -");
				for (size_t i = 0; i < c->n_certmaps; i++)
					if (!strcmp(c->certmaps[i].name, arg))
						FAIL(lineno, NULL, "certificate mapping %s defined twice", arg);
				if (c->n_certmaps >= CONF_MAX_CERTMAPS)
					FAIL(lineno, NULL, "more than %d certificate mappings", CONF_MAX_CERTMAPS);
				cm = &c->certmaps[c->n_certmaps++];
				cm->name = xstrdup(arg);
				cm->line = lineno;
				apply_defaults(c, SEC_CERTMAP, cm);
				l = cm;
				cur = SEC_CERTMAP;
				continue;
			}
			if (str_ieq(s, "Listener")) {
				if (!arg || !listener_name_ok(arg))
					FAIL(lineno, NULL, "[Listener NAME] needs a name of letters, digits, . _ -");
				for (size_t i = 0; i < c->n_listeners; i++)
					if (!strcmp(c->listeners[i].name, arg))
						FAIL(lineno, NULL, "listener %s defined twice", arg);
				if (c->n_listeners >= CONF_MAX_LISTENERS)
					FAIL(lineno, NULL, "more than %d listeners", CONF_MAX_LISTENERS);
				struct conf_listener *cl = &c->listeners[c->n_listeners++];
				cl->name = xstrdup(arg);
				cl->line = lineno;
				apply_defaults(c, SEC_LISTENER, cl);
				l = cl;
				cur = SEC_LISTENER;
				continue;
			}
			if (arg)
				FAIL(lineno, NULL, "section [%s] takes no name", s);
			for (cur = SEC_SERVICE; cur < SEC_LISTENER; cur++)
				if (str_ieq(s, sec_names[cur]))
					break;
			if (cur == SEC_LISTENER)
				FAIL(lineno, NULL, "unknown section [%s]", s);
			continue;
		}
		eq = strchr(s, '=');
		if (!eq)
			FAIL(lineno, NULL, "expected Key = Value");
		*eq = '\0';
		key = str_trim(s);
		val = str_trim(eq + 1);
		if (cur == SEC_NONE)
			FAIL(lineno, key, "key outside any section");
		const struct conf_key *k = key_find(cur, key);
		if (!k)
			FAIL(lineno, key, "unknown key in [%s]", sec_names[cur]);
		if (key_set(c, l, k, val, why, sizeof why) < 0)
			FAIL(lineno, k->name, "%s", why);
	}
out:
	return r;
}

int conf_parse(const char *text, size_t len, const char *name, struct conf *c,
    char *err, size_t errlen)
{
	int r;

	conf_init(c, name);
	r = parse_into(c, text, len, name, false, err, errlen);
	if (r == 0)
		r = conf_validate(c, name, err, errlen);
	if (r < 0)
		conf_free(c);
	return r;
}

static int read_text(const char *path, struct buf *b, char *err, size_t errlen)
{
	char chunk[8192];
	FILE *f;
	size_t n;
	int r;

	buf_init(b, CONF_MAX_FILE + 1);
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return r;
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (buf_append(b, chunk, n) < 0) {
			fclose(f);
			buf_free(b);
			snprintf(err, errlen, "%s: file larger than %d bytes", path, CONF_MAX_FILE);
			return -EFBIG;
		}
	fclose(f);
	buf_str(b);
	return 0;
}

static int conf_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 5 && !strcmp(d->d_name + n - 5, ".conf");
}

/*
 * pwsh where a package or an admin puts it: Microsoft's packages, a snap, or
 * a link in /usr/local/bin (how a .NET global tool installed with
 * --tool-path is made available). Never the caller's PATH: the daemon's
 * choice of program must not depend on who asks.
 */
const char *conf_pwsh_path(void)
{
	static const char *const pwsh[] = {
		"/usr/bin/pwsh", "/usr/local/bin/pwsh", "/opt/microsoft/powershell/7/pwsh",
		"/snap/bin/pwsh",
	};

	for (size_t i = 0; i < ARRAY_SIZE(pwsh); i++)
		if (access(pwsh[i], X_OK) == 0)
			return pwsh[i];
	return NULL;
}

/* Microsoft.PowerShell and PowerShell.7 exist whenever pwsh does, as on Windows. */
static void add_default_sessions(struct conf *c)
{
	static const char *const names[] = { "Microsoft.PowerShell", "PowerShell.7" };
	const char *found = conf_pwsh_path();

	if (!found)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct conf_session *sc;
		if (conf_session_by_name(c, names[i]) || c->n_sessions >= CONF_MAX_SESSIONS)
			continue;
		sc = &c->sessions[c->n_sessions++];
		apply_defaults(c, SEC_SESSION, sc);
		sc->name = xstrdup(names[i]);
		sc->file = xstrdup("(default)");
		free(sc->command);
		sc->command = xasprintf("%s " CONF_PWSH_ARGS, found);
	}
}

/*
 * The main text (from the file `path`, or the embedded default), then the
 * sessions.d/ beside path, the built-in sessions if `builtins`, and
 * validation.  name is what messages and the dump call the main text.
 */
static int load_with_sessions(const char *path, const char *name, const char *text, size_t len,
    bool builtins, struct conf *c, char *err, size_t errlen)
{
	struct dirent **ents = NULL;
	char dir[PATH_MAX], *slash;
	struct buf b;
	int r, n;

	conf_init(c, name);
	r = parse_into(c, text, len, name, false, err, errlen);
	if (r < 0)
		goto out;

	/* sessions.d/ beside the main file, in name order so errors are stable. */
	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		snprintf(slash + 1, sizeof dir - (size_t)(slash + 1 - dir), "sessions.d");
	else
		snprintf(dir, sizeof dir, "sessions.d");
	n = scandir(dir, &ents, conf_filter, alphasort);
	for (int i = 0; i < n; i++) {
		char file[PATH_MAX + 256];
		snprintf(file, sizeof file, "%s/%s", dir, ents[i]->d_name);
		if (r == 0 && (r = read_text(file, &b, err, errlen)) == 0) {
			size_t before = c->n_sessions;
			r = parse_into(c, (char *)b.data, b.len, file, true, err, errlen);
			buf_free(&b);
			if (r == 0 && c->n_sessions == before) {
				snprintf(err, errlen, "%s: no [SessionConfiguration] section", file);
				r = -EINVAL;
			} else if (r == 0) {
				/* The file is named after the configuration. */
				struct conf_session *sc = &c->sessions[before];
				size_t fl = strlen(ents[i]->d_name) - 5;
				if (!sc->name || strlen(sc->name) != fl ||
				    strncasecmp(sc->name, ents[i]->d_name, fl)) {
					snprintf(err, errlen, "%s:%d: Name: must match the file name", file, sc->line);
					r = -EINVAL;
				}
			}
		}
		free(ents[i]);
	}
	free(ents);
	if (r < 0)
		goto out;
	if (builtins)
		add_default_sessions(c);
	r = conf_validate(c, name, err, errlen);
	if (r == 0)
		return 0;
out:
	conf_free(c);
	return r;
}

int conf_load(const char *path, struct conf *c, char *err, size_t errlen)
{
	struct buf b;
	int r;

	r = read_text(path, &b, err, errlen);
	if (r < 0)
		return r;
	r = load_with_sessions(path, path, (char *)b.data, b.len, true, c, err, errlen);
	buf_free(&b);
	return r;
}

int conf_load_default(const char *path, struct conf *c, char *err, size_t errlen)
{
	/* The built-in PowerShell configurations too: the embedded default serves them. */
	return load_with_sessions(path, "(embedded)", conf_embedded_text, strlen(conf_embedded_text),
	    true, c, err, errlen);
}

const struct conf_session *conf_session_by_name(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->n_sessions; i++)
		if (c->sessions[i].name && str_ieq(c->sessions[i].name, name))
			return &c->sessions[i];
	return NULL;
}

const struct conf_session *conf_session_by_uri(const struct conf *c, const char *uri)
{
	for (size_t i = 0; i < c->n_sessions; i++)
		if (str_ieq(c->sessions[i].resource_uri, uri))
			return &c->sessions[i];
	return NULL;
}

int conf_load_embedded(struct conf *c)
{
	char err[256];

	if (conf_parse(conf_embedded_text, strlen(conf_embedded_text), "(embedded)", c,
	    err, sizeof err) < 0)
		abort();
	/* As with a file: the PowerShell configurations exist when pwsh does. */
	add_default_sessions(c);
	if (conf_validate(c, c->path, err, sizeof err) < 0)
		abort();
	return 0;
}

void conf_free(struct conf *c)
{
	for (size_t i = 0; i < ARRAY_SIZE(conf_keys); i++) {
		const struct conf_key *k = &conf_keys[i];
		if (k->type == KT_BOOL || k->type == KT_UINT || k->type == KT_ENUM)
			continue;
		if (k->sec == SEC_LISTENER) {
			for (size_t j = 0; j < c->n_listeners; j++) {
				char **sp = key_ptr(c, &c->listeners[j], k);
				free(*sp);
				*sp = NULL;
			}
		} else if (k->sec == SEC_SESSION) {
			for (size_t j = 0; j < c->n_sessions; j++) {
				char **sp = key_ptr(c, &c->sessions[j], k);
				free(*sp);
				*sp = NULL;
			}
		} else if (k->sec == SEC_CERTMAP) {
			for (size_t j = 0; j < c->n_certmaps; j++) {
				char **sp = key_ptr(c, &c->certmaps[j], k);
				free(*sp);
				*sp = NULL;
			}
		} else {
			char **sp = key_ptr(c, NULL, k);
			free(*sp);
			*sp = NULL;
		}
	}
	for (size_t j = 0; j < c->n_listeners; j++)
		free(c->listeners[j].name);
	for (size_t j = 0; j < c->n_sessions; j++)
		free(c->sessions[j].file);
	for (size_t j = 0; j < c->n_certmaps; j++)
		free(c->certmaps[j].name);
	free(c->path);
	memset(c, 0, sizeof *c);
}

static void dump_section(struct conf *c, enum sec sec, void *l, const char *lname, struct buf *b)
{
	if (l)
		buf_appendf(b, "[%s %s]\n", sec_names[sec], lname);
	else
		buf_appendf(b, "[%s]\n", sec_names[sec]);
	for (size_t i = 0; i < ARRAY_SIZE(conf_keys); i++) {
		if (conf_keys[i].sec != sec || (sec == SEC_SESSION && !strcmp(conf_keys[i].name, "Name")))
			continue;       /* a session's name is in its header */
		buf_appendf(b, "%s = ", conf_keys[i].name);
		key_format(c, l, &conf_keys[i], b);
		buf_appends(b, "\n");
	}
	buf_appends(b, "\n");
}

char *conf_dump(const struct conf *cc)
{
	struct conf *c = (struct conf *)cc; /* key_ptr is shared with setters */
	struct buf b;
	char *s;

	buf_init(&b, 0);
	buf_appends(&b, "# winrmd effective configuration\n");
	dump_section(c, SEC_SERVICE, NULL, NULL, &b);
	dump_section(c, SEC_AUTH, NULL, NULL, &b);
	dump_section(c, SEC_WINRS, NULL, NULL, &b);
	for (size_t i = 0; i < c->n_listeners; i++)
		dump_section(c, SEC_LISTENER, &c->listeners[i], c->listeners[i].name, &b);
	for (size_t i = 0; i < c->n_sessions; i++)
		dump_section(c, SEC_SESSION, &c->sessions[i], c->sessions[i].name, &b);
	for (size_t i = 0; i < c->n_certmaps; i++)
		dump_section(c, SEC_CERTMAP, &c->certmaps[i], c->certmaps[i].name, &b);
	s = xstrdup(buf_str(&b));
	buf_free(&b);
	return s;
}

bool conf_list_has(const char *list, const char *word)
{
	size_t wl = strlen(word);

	if (!list || !wl)
		return false;
	for (const char *p = list; *p;) {
		const char *e = strchr(p, ' ');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == wl && !memcmp(p, word, n))
			return true;
		if (!e)
			break;
		p = e + 1;
	}
	return false;
}

size_t conf_list_split(const char *list, char *copy, size_t copylen, char **words, size_t max)
{
	char *save = NULL, *w;
	size_t n = 0;

	snprintf(copy, copylen, "%s", list ? list : "");
	for (w = strtok_r(copy, " ", &save); w && n < max; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	return n;
}

static int section_lookup(const char *section, enum sec *sec, const char **lname)
{
	*lname = NULL;
	for (enum sec s = SEC_SERVICE; s < SEC_LISTENER; s++)
		if (str_ieq(section, sec_names[s])) {
			*sec = s;
			return 0;
		}
	if (str_iprefix(section, "Listener ") || str_iprefix(section, "Listener/")) {
		*sec = SEC_LISTENER;
		*lname = section + strlen("Listener ");
		return 0;
	}
	return -ENOENT;
}

static struct conf_listener *listener_by_name(struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->n_listeners; i++)
		if (!strcmp(c->listeners[i].name, name))
			return &c->listeners[i];
	return NULL;
}

int conf_set_value(struct conf *c, const char *section, const char *key,
    const char *value, char *err, size_t errlen)
{
	struct conf_listener *l = NULL;
	const struct conf_key *k;
	const char *lname;
	char why[512];
	enum sec sec;

	if (section_lookup(section, &sec, &lname) < 0) {
		snprintf(err, errlen, "unknown section %s", section);
		return -ENOENT;
	}
	if (sec == SEC_LISTENER && !(l = listener_by_name(c, lname))) {
		snprintf(err, errlen, "no listener named %s", lname);
		return -ENOENT;
	}
	k = key_find(sec, key);
	if (!k) {
		snprintf(err, errlen, "unknown key %s in [%s]", key, section);
		return -ENOENT;
	}
	if (key_set(c, l, k, value, why, sizeof why) < 0) {
		snprintf(err, errlen, "%s: %s", k->name, why);
		return -EINVAL;
	}
	return conf_validate(c, c->path, err, errlen);
}

char *conf_get_value(const struct conf *cc, const char *section, const char *key)
{
	struct conf *c = (struct conf *)cc;
	struct conf_listener *l = NULL;
	const struct conf_key *k;
	const char *lname;
	struct buf b;
	enum sec sec;
	char *s;

	if (section_lookup(section, &sec, &lname) < 0)
		return NULL;
	if (sec == SEC_LISTENER && !(l = listener_by_name(c, lname)))
		return NULL;
	if (!(k = key_find(sec, key)))
		return NULL;
	buf_init(&b, 0);
	key_format(c, l, k, &b);
	s = xstrdup(buf_str(&b));
	buf_free(&b);
	return s;
}
