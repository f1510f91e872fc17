/*
 * unit.c - unit tests for winrmd's parsers and helpers: configuration,
 * base64/buffers/ids, SOAP envelopes and faults, Basic credentials and the
 * monitor<->worker IPC framing.
 *
 * Linked against the real daemon objects (no mocks): what is tested here is
 * exactly what runs.  Every test is a function; CHECK records a failure and
 * carries on so one run shows every broken expectation.  The last line of
 * output is "N passed, N failed" (test functions), which `make check` and CI
 * read.  `build/unit NAME` runs only the tests whose name contains NAME.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <libxml/parser.h>
#include <systemd/sd-event.h>

#include "auth.h"
#include "bytes.h"
#include "conf.h"
#include "ipc.h"
#include "mon.h"
#include "soap.h"
#include "util.h"
#include "wlimits.h"

/* ---- the framework ---------------------------------------------------- */

static bool cur_failed;

static bool check_(bool ok, const char *expr, const char *file, int line)
{
	if (!ok) {
		printf("  %s:%d: CHECK(%s) failed\n", file, line, expr);
		cur_failed = true;
	}
	return ok;
}

static bool check_str_(const char *got, const char *want, const char *expr,
    const char *file, int line)
{
	if (got && want && !strcmp(got, want))
		return true;
	if (!got && !want)
		return true;
	printf("  %s:%d: CHECK_STR(%s) failed\n    got:  \"%s\"\n    want: \"%s\"\n",
	    file, line, expr, got ? got : "(null)", want ? want : "(null)");
	cur_failed = true;
	return false;
}

#define CHECK(e) check_(!!(e), #e, __FILE__, __LINE__)
#define CHECK_STR(got, want) check_str_((got), (want), #got, __FILE__, __LINE__)

/* Deterministic data so a failure reproduces run after run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 32);
}

/* ---- conf ------------------------------------------------------------- */

static const char conf_full_text[] =
	"# A file that sets every key, in odd spellings, to non-default values.\n"
	"\n"
	"   [service]     # lower-case section name, trailing comment\n"
	"allowunencrypted = TRUE\n"
	"MAXENVELOPESIZEKB=1024\n"
	"\tMaxTimeoutms   =   120000   \n"
	"MaxBatchItems = 100\r\n"
	"MaxConcurrentOperationsPerUser = 200\n"
	"MaxConnections = 50\n"
	"MaxConnectionsPerIP = 5\n"
	"AllowedGroups = admins, ops\twheel\n"
	"AllowedUsers = alice bob.smith carol@EXAMPLE.COM\n"
	"EnableUnauthenticatedIdentify = no\n"
	"PamService = winrmd-test # the PAM stack\n"
	"\n"
	"[SERVICE/AUTH]\n"
	"Basic = off\n"
	"Negotiate = 0\n"
	"Kerberos = yes\n"
	"Certificate = on\n"
	"CbtHardeningLevel = strict\n"
	"Keytab = /etc/test.keytab\n"
	"NtlmStore = /var/lib/winrmd/ntlm.db\n"
	"CAFile = /etc/ssl/ca.pem\n"
	"\n"
	"[Winrs]\n"
	"AllowRemoteShellAccess = false\n"
	"IdleTimeout = 60000\n"
	"MaxShellsPerUser = 5\n"
	"MaxConcurrentUsers = 3\n"
	"MaxProcessesPerShell = 10\n"
	"MaxMemoryPerShellMB = 512\n"
	"MaxShellRunTime = 3600000\n"
	"\n"
	"[Listener http-local]\n"
	"Transport = http\n"
	"Address = 127.0.0.1\n"
	"Port = 15985\n"
	"Enabled = true\n"
	"\n"
	"[listener  v6.only ]\n"
	"transport = HTTPS\n"
	"address = ::1\n"
	"certificatefile = /etc/x.crt\n"
	"KEYFILE = /etc/x.key\n"
	"\n"
	"[Listener all_off]\n"
	"Address = *\n"
	"Port = 15985\n"
	"Enabled = false\n";

static void test_conf_full(void)
{
	char err[512] = "";
	struct conf c;

	if (!CHECK(conf_parse(conf_full_text, strlen(conf_full_text), "full.conf", &c, err,
	    sizeof err) == 0)) {
		printf("    error: %s\n", err);
		return;
	}
	CHECK_STR(c.path, "full.conf");
	CHECK(c.service.allow_unencrypted == true);
	CHECK(c.service.max_envelope_kb == 1024);
	CHECK(c.service.max_timeout_ms == 120000);
	CHECK(c.service.max_batch_items == 100);
	CHECK(c.service.max_ops_per_user == 200);
	CHECK(c.service.max_connections == 50);
	CHECK(c.service.max_connections_per_ip == 5);
	CHECK_STR(c.service.allowed_groups, "admins ops wheel");
	CHECK_STR(c.service.allowed_users, "alice bob.smith carol@EXAMPLE.COM");
	CHECK(c.service.unauth_identify == false);
	CHECK_STR(c.service.pam_service, "winrmd-test");

	CHECK(!c.auth.basic);
	CHECK(!c.auth.negotiate);
	CHECK(c.auth.kerberos);
	CHECK(c.auth.certificate);
	CHECK(c.auth.cbt_level == CONF_CBT_STRICT);
	CHECK_STR(c.auth.keytab, "/etc/test.keytab");
	CHECK_STR(c.auth.ntlm_store, "/var/lib/winrmd/ntlm.db");
	CHECK_STR(c.auth.ca_file, "/etc/ssl/ca.pem");

	CHECK(!c.winrs.allow_remote_shell);
	CHECK(c.winrs.idle_timeout_ms == 60000);
	CHECK(c.winrs.max_shells_per_user == 5);
	CHECK(c.winrs.max_users == 3);
	CHECK(c.winrs.max_procs_per_shell == 10);
	CHECK(c.winrs.max_memory_mb == 512);
	CHECK(c.winrs.max_shell_runtime_ms == 3600000);

	if (CHECK(c.n_listeners == 3)) {
		struct conf_listener *l = c.listeners;
		CHECK_STR(l[0].name, "http-local");
		CHECK(l[0].transport == CONF_HTTP);
		CHECK_STR(l[0].address, "127.0.0.1");
		CHECK(l[0].port == 15985);
		CHECK(l[0].enabled);
		CHECK(l[0].line == 35);
		CHECK_STR(l[0].cert_file, "");     /* HTTP gets no default certificate */

		CHECK_STR(l[1].name, "v6.only");
		CHECK(l[1].transport == CONF_HTTPS);
		CHECK_STR(l[1].address, "::1");
		CHECK(l[1].port == 5986);
		CHECK_STR(l[1].cert_file, "/etc/x.crt");
		CHECK_STR(l[1].key_file, "/etc/x.key");
		CHECK(l[1].enabled);

		/* Same port as http-local on "*", but disabled, so no overlap. */
		CHECK_STR(l[2].name, "all_off");
		CHECK(l[2].port == 15985);
		CHECK(!l[2].enabled);
	}
	conf_free(&c);
}

static void test_conf_defaults(void)
{
	static const char text[] =
		"[Listener plain]\n"
		"[Listener secure]\nTransport = HTTPS\n";
	char err[512] = "";
	struct conf c;

	if (!CHECK(conf_parse(text, strlen(text), "d.conf", &c, err, sizeof err) == 0)) {
		printf("    error: %s\n", err);
		return;
	}
	/* These are the values of the table in config/conf.c. */
	CHECK(c.service.allow_unencrypted == false);
	CHECK(c.service.max_envelope_kb == 500);
	CHECK(c.service.max_timeout_ms == 60000);
	CHECK(c.service.max_batch_items == 32000);
	CHECK(c.service.max_ops_per_user == 1500);
	CHECK(c.service.max_connections == 300);
	CHECK(c.service.max_connections_per_ip == HTTP_PER_IP_CONN_LIMIT);
	CHECK_STR(c.service.allowed_groups, "sudo wheel winrm-users");
	CHECK_STR(c.service.allowed_users, "");
	CHECK(c.service.unauth_identify == true);
	CHECK_STR(c.service.pam_service, "winrmd");
	CHECK(c.auth.basic && c.auth.negotiate && c.auth.kerberos && !c.auth.certificate);
	CHECK(c.auth.cbt_level == CONF_CBT_RELAXED);
	CHECK_STR(c.auth.keytab, "/etc/krb5.keytab");
	CHECK_STR(c.auth.ntlm_store, "/etc/winrmd/ntlm.db");
	CHECK_STR(c.auth.ca_file, "");
	CHECK(c.winrs.allow_remote_shell);
	CHECK(c.winrs.idle_timeout_ms == 7200000);
	CHECK(c.winrs.max_shells_per_user == 30);
	CHECK(c.winrs.max_users == 10);
	CHECK(c.winrs.max_procs_per_shell == 25);
	CHECK(c.winrs.max_memory_mb == 1024);
	CHECK(c.winrs.max_shell_runtime_ms == 2147483647ULL);
	if (CHECK(c.n_listeners == 2)) {
		CHECK(c.listeners[0].transport == CONF_HTTP);
		CHECK_STR(c.listeners[0].address, "*");
		CHECK(c.listeners[0].port == 5985);
		CHECK(c.listeners[0].enabled);
		CHECK(c.listeners[1].transport == CONF_HTTPS);
		CHECK(c.listeners[1].port == 5986);
		CHECK_STR(c.listeners[1].cert_file, CONF_DEFAULT_CERT);
		CHECK_STR(c.listeners[1].key_file, CONF_DEFAULT_KEY);
	}
	conf_free(&c);

	/* An empty file is valid: all defaults, no listeners. */
	CHECK(conf_parse("", 0, "empty.conf", &c, err, sizeof err) == 0);
	CHECK(c.n_listeners == 0);
	conf_free(&c);

	CHECK(conf_load_embedded(&c) == 0);
	CHECK_STR(c.path, "(embedded)");
	if (CHECK(c.n_listeners == 2)) {
		CHECK_STR(c.listeners[0].address, "127.0.0.1");
		CHECK(c.listeners[0].port == 5985 && c.listeners[0].transport == CONF_HTTP);
		CHECK_STR(c.listeners[1].address, "127.0.0.1");
		CHECK(c.listeners[1].port == 5986 && c.listeners[1].transport == CONF_HTTPS);
	}
	conf_free(&c);
}

/* Parse text that must fail with exactly `want` as the message. */
static void conf_expect_err(const char *text, size_t len, const char *want, int line)
{
	char err[512] = "";
	struct conf c;
	int r = conf_parse(text, len, "t.conf", &c, err, sizeof err);

	if (!check_(r == -EINVAL, "conf_parse(...) == -EINVAL", __FILE__, line)) {
		if (r == 0)
			conf_free(&c);
		return;
	}
	check_str_(err, want, "err", __FILE__, line);
	/* A failed parse leaves nothing allocated behind. */
	check_(c.path == NULL && c.n_listeners == 0, "conf zeroed after failure", __FILE__, line);
}
#define CONF_ERR(text, want) conf_expect_err((text), strlen(text), (want), __LINE__)

static void test_conf_errors(void)
{
	CONF_ERR("[Service]\nBogus = 1\n", "t.conf:2: Bogus: unknown key in [Service]");
	CONF_ERR("[Winrs]\nBasic = true\n", "t.conf:2: Basic: unknown key in [Winrs]");
	CONF_ERR("\n[Nope]\n", "t.conf:2: unknown section [Nope]");
	CONF_ERR("[Service]\nAllowUnencrypted = maybe\n",
	    "t.conf:2: AllowUnencrypted: expected true or false, got \"maybe\"");
	CONF_ERR("[Service]\nmaxenvelopesizekb = 65537\n",
	    "t.conf:2: MaxEnvelopeSizekb: expected a whole number from 32 to 65536, got \"65537\"");
	CONF_ERR("[Service]\nMaxEnvelopeSizekb = 31\n",
	    "t.conf:2: MaxEnvelopeSizekb: expected a whole number from 32 to 65536, got \"31\"");
	CONF_ERR("[Service]\nMaxTimeoutms = -1\n",
	    "t.conf:2: MaxTimeoutms: expected a whole number from 500 to 2147483647, got \"-1\"");
	CONF_ERR("[Service]\nMaxTimeoutms = 99999999999999999999999\n",
	    "t.conf:2: MaxTimeoutms: expected a whole number from 500 to 2147483647, got \"99999999999999999999999\"");
	CONF_ERR("[Listener a]\nAddress = 256.1.1.1\n",
	    "t.conf:2: Address: expected * or an IPv4/IPv6 address, got \"256.1.1.1\"");
	CONF_ERR("[Listener a]\nAddress = localhost\n",
	    "t.conf:2: Address: expected * or an IPv4/IPv6 address, got \"localhost\"");
	CONF_ERR("[Listener a]\nPort = 65536\n",
	    "t.conf:2: Port: expected a whole number from 0 to 65535, got \"65536\"");
	CONF_ERR("[Listener a]\nTransport = ftp\n", "t.conf:2: Transport: unknown value \"ftp\"");
	CONF_ERR("[Service/Auth]\nKeytab = krb5.keytab\n",
	    "t.conf:2: Keytab: expected an absolute path, got \"krb5.keytab\"");
	CONF_ERR("[Listener a]\nCertificateFile = ./x.crt\n",
	    "t.conf:2: CertificateFile: expected an absolute path, got \"./x.crt\"");
	CONF_ERR("[Listener a]\n[Listener a]\n", "t.conf:2: listener a defined twice");
	CONF_ERR("[Listener a]\nPort = 8000\n[Listener b]\nAddress = 127.0.0.1\nPort = 8000\n",
	    "t.conf:3: Port: listener b overlaps listener a (port 8000)");
	/* Both default to 5985 on the same address. */
	CONF_ERR("[Listener a]\nAddress=10.0.0.1\n[Listener b]\nAddress=10.0.0.1\n",
	    "t.conf:3: Port: listener b overlaps listener a (port 5985)");
	CONF_ERR("Basic = true\n", "t.conf:1: Basic: key outside any section");
	CONF_ERR("[Service\n", "t.conf:1: malformed section header");
	CONF_ERR("[Service] x\n", "t.conf:1: malformed section header");
	CONF_ERR("[Service x]\n", "t.conf:1: section [Service] takes no name");
	CONF_ERR("[Service]\nBasic\n", "t.conf:2: expected Key = Value");
	CONF_ERR("[Listener]\n", "t.conf:1: [Listener NAME] needs a name of letters, digits, . _ -");
	CONF_ERR("[Listener a/b]\n", "t.conf:1: [Listener NAME] needs a name of letters, digits, . _ -");
	CONF_ERR("[Service]\nAllowedGroups = ok bad!name\n",
	    "t.conf:2: AllowedGroups: expected names separated by spaces (letters, digits, ._-@$), got \"ok bad!name\"");
	CONF_ERR("[Auth]\n", "t.conf:1: unknown section [Auth]");
	CONF_ERR("[Service/Auth]\nCbtHardeningLevel = paranoid\n",
	    "t.conf:2: CbtHardeningLevel: unknown value \"paranoid\"");

	conf_expect_err("[Service]\nBasic\0 = 1\n", 20, "t.conf:2: NUL byte in line", __LINE__);

	/* Line length: exactly CONF_MAX_LINE is fine, one more is not. */
	{
		size_t n = CONF_MAX_LINE + 1;
		char *t = xmalloc(32 + n + 2);
		int o = snprintf(t, 32, "[Service]\n");

		memset(t + o, '#', CONF_MAX_LINE);
		t[o + CONF_MAX_LINE] = '\n';
		t[o + CONF_MAX_LINE + 1] = '\0';
		{
			char err[512];
			struct conf c;
			CHECK(conf_parse(t, strlen(t), "t.conf", &c, err, sizeof err) == 0);
			conf_free(&c);
		}
		memset(t + o, '#', n);
		t[o + n] = '\n';
		t[o + n + 1] = '\0';
		CONF_ERR(t, "t.conf:2: line longer than 4096 bytes");
		free(t);
	}

	/* More listeners than CONF_MAX_LISTENERS. */
	{
		struct buf b;
		buf_init(&b, 0);
		for (int i = 0; i <= CONF_MAX_LISTENERS; i++)
			buf_appendf(&b, "[Listener l%d]\nPort = %d\n", i, 10000 + i);
		CONF_ERR(buf_str(&b), "t.conf:65: more than 32 listeners");
		buf_free(&b);
	}

	/* Too large a file is refused before any parsing. */
	{
		size_t n = CONF_MAX_FILE + 1;
		char *t = xmalloc(n);
		char err[512];
		struct conf c;

		memset(t, '\n', n);
		CHECK(conf_parse(t, n, "big.conf", &c, err, sizeof err) == -EFBIG);
		free(t);
	}

	/* A short error buffer is truncated, never overrun. */
	{
		char err[8];
		struct conf c;
		memset(err, 'x', sizeof err);
		CHECK(conf_parse("[Nope]\n", 7, "t.conf", &c, err, sizeof err) == -EINVAL);
		CHECK(memchr(err, '\0', sizeof err) != NULL);
	}
}

/* dump -> parse -> dump must be the identity. */
static void conf_roundtrip(struct conf *c, int line)
{
	char err[512] = "";
	char *d1 = conf_dump(c), *d2;
	struct conf c2;

	if (!check_(conf_parse(d1, strlen(d1), c->path, &c2, err, sizeof err) == 0,
	    "dump re-parses", __FILE__, line)) {
		printf("    error: %s\n    dump:\n%s\n", err, d1);
		free(d1);
		return;
	}
	d2 = conf_dump(&c2);
	check_str_(d2, d1, "second dump", __FILE__, line);
	free(d1);
	free(d2);
	conf_free(&c2);
}

static void test_conf_dump_roundtrip(void)
{
	char err[512] = "";
	struct conf c;
	char *d;

	conf_load_embedded(&c);
	conf_roundtrip(&c, __LINE__);
	d = conf_dump(&c);
	CHECK(strstr(d, "[Listener http]\n") && strstr(d, "[Listener https]\n"));
	CHECK(strstr(d, "MaxEnvelopeSizekb = 500\n"));
	CHECK(strstr(d, "AllowedGroups = sudo wheel winrm-users\n"));
	CHECK(strstr(d, "CertificateFile = " CONF_DEFAULT_CERT "\n"));
	free(d);
	conf_free(&c);

	if (CHECK(conf_parse(conf_full_text, strlen(conf_full_text), "full.conf", &c, err,
	    sizeof err) == 0)) {
		conf_roundtrip(&c, __LINE__);
		d = conf_dump(&c);
		CHECK(strstr(d, "CbtHardeningLevel = Strict\n"));
		CHECK(strstr(d, "[Listener v6.only]\n"));
		CHECK(strstr(d, "AllowedGroups = admins ops wheel\n"));
		free(d);
		conf_free(&c);
	}
}

static void test_conf_load(void)
{
	char path[] = "/tmp/winrmd-unit-XXXXXX";
	char err[512] = "";
	struct conf c;
	int fd = mkstemp(path);

	if (!CHECK(fd >= 0))
		return;
	CHECK(write(fd, conf_full_text, strlen(conf_full_text)) == (ssize_t)strlen(conf_full_text));
	close(fd);
	CHECK(conf_load(path, &c, err, sizeof err) == 0);
	CHECK_STR(c.path, path);
	CHECK(c.n_listeners == 3);
	conf_free(&c);
	unlink(path);
	CHECK(conf_load(path, &c, err, sizeof err) == -ENOENT);
	CHECK(strstr(err, path) != NULL);
}

static void test_conf_set_get(void)
{
	char err[512] = "";
	struct conf c;
	char *v;

	conf_load_embedded(&c);
	CHECK(conf_set_value(&c, "Service", "MaxEnvelopeSizekb", "1000", err, sizeof err) == 0);
	v = conf_get_value(&c, "service", "maxenvelopesizekb");
	CHECK_STR(v, "1000");
	free(v);
	CHECK(c.service.max_envelope_kb == 1000);

	CHECK(conf_set_value(&c, "Service", "MaxEnvelopeSizekb", "10", err, sizeof err) == -EINVAL);
	CHECK_STR(err, "MaxEnvelopeSizekb: expected a whole number from 32 to 65536, got \"10\"");
	CHECK(c.service.max_envelope_kb == 1000);

	CHECK(conf_set_value(&c, "Nope", "Basic", "true", err, sizeof err) == -ENOENT);
	CHECK(conf_set_value(&c, "Service", "Nope", "true", err, sizeof err) == -ENOENT);
	CHECK(conf_set_value(&c, "Listener nosuch", "Port", "1", err, sizeof err) == -ENOENT);

	CHECK(conf_set_value(&c, "Service/Auth", "CbtHardeningLevel", "none", err, sizeof err) == 0);
	v = conf_get_value(&c, "Service/Auth", "CbtHardeningLevel");
	CHECK_STR(v, "None");
	free(v);

	CHECK(conf_set_value(&c, "Service", "AllowedGroups", "a,b  c", err, sizeof err) == 0);
	v = conf_get_value(&c, "Service", "AllowedGroups");
	CHECK_STR(v, "a b c");
	free(v);

	CHECK(conf_set_value(&c, "Listener http", "Port", "8080", err, sizeof err) == 0);
	v = conf_get_value(&c, "Listener http", "Port");
	CHECK_STR(v, "8080");
	free(v);
	v = conf_get_value(&c, "Listener/https", "Transport");
	CHECK_STR(v, "HTTPS");
	free(v);
	CHECK(conf_get_value(&c, "Listener nosuch", "Port") == NULL);
	CHECK(conf_get_value(&c, "Service", "Nope") == NULL);
	CHECK(conf_get_value(&c, "Nope", "Basic") == NULL);

	CHECK(conf_set_value(&c, "Service/Auth", "Keytab", "relative", err, sizeof err) == -EINVAL);
	conf_roundtrip(&c, __LINE__);
	conf_free(&c);
}

/*
 * Whatever conf_set_value accepts (winrmctl config set) is written by
 * conf_dump into the file the worker re-parses; a value the parser would
 * read back differently must be refused, not silently changed or turned
 * into extra lines.
 */
static void test_conf_set_value_dump_safe(void)
{
	static const struct { const char *sec, *key, *val; } cases[] = {
		{ "Service/Auth", "Keytab", "/etc/a#b.keytab" },
		/* CAFile is the last key of its section, so the injected one parses. */
		{ "Service/Auth", "CAFile", "/x\n[Listener evil]\nAddress = *\nPort = 5999" },
		{ "Service", "PamService", "winrmd\nAllowUnencrypted = true" },
		{ "Service", "AllowedUsers", "alice\nbob" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char err[512] = "";
		struct conf c, c2;
		char *v, *d;

		conf_load_embedded(&c);
		if (conf_set_value(&c, cases[i].sec, cases[i].key, cases[i].val, err, sizeof err) < 0) {
			conf_free(&c);
			continue;       /* refused: fine */
		}
		d = conf_dump(&c);
		if (conf_parse(d, strlen(d), "(embedded)", &c2, err, sizeof err) == 0) {
			v = conf_get_value(&c2, cases[i].sec, cases[i].key);
			if (!CHECK(v && !strcmp(v, cases[i].val)))
				printf("    conf_set_value(%s, %s, \"%s\") accepted, dump re-read as \"%s\"\n",
				    cases[i].sec, cases[i].key, cases[i].val, v ? v : "(null)");
			CHECK(c2.n_listeners == c.n_listeners);
			CHECK(c2.service.allow_unencrypted == c.service.allow_unencrypted);
			free(v);
			conf_free(&c2);
		} else {
			CHECK(!"dump of an accepted value does not parse");
			printf("    %s\n", err);
		}
		free(d);
		conf_free(&c);
	}
}

static void test_conf_list(void)
{
	char copy[64];
	char *w[4];

	CHECK(conf_list_has("sudo wheel winrm-users", "wheel"));
	CHECK(conf_list_has("sudo wheel winrm-users", "sudo"));
	CHECK(conf_list_has("sudo wheel winrm-users", "winrm-users"));
	CHECK(!conf_list_has("sudo wheel winrm-users", "whee"));
	CHECK(!conf_list_has("sudo wheel winrm-users", "Wheel"));      /* names are case-sensitive */
	CHECK(!conf_list_has("sudo wheel winrm-users", "winrm"));
	CHECK(!conf_list_has("sudo wheel winrm-users", "sudo wheel"));
	CHECK(!conf_list_has("sudo wheel", ""));
	CHECK(!conf_list_has("", "sudo"));
	CHECK(!conf_list_has(NULL, "sudo"));
	CHECK(conf_list_has("one", "one"));

	CHECK(conf_list_split("a bb ccc", copy, sizeof copy, w, 4) == 3);
	CHECK_STR(w[0], "a");
	CHECK_STR(w[2], "ccc");
	CHECK(conf_list_split("a b c d e", copy, sizeof copy, w, 4) == 4);
	CHECK(conf_list_split("", copy, sizeof copy, w, 4) == 0);
	CHECK(conf_list_split(NULL, copy, sizeof copy, w, 4) == 0);
	CHECK_STR(conf_transport_name(CONF_HTTPS), "HTTPS");
	CHECK_STR(conf_transport_name(CONF_HTTP), "HTTP");
}

/* ---- util ------------------------------------------------------------- */

static void test_b64_roundtrip(void)
{
	unsigned char in[300], out[310];

	for (size_t n = 0; n <= sizeof in; n++) {
		char *e, *wrapped;
		long r;
		size_t elen, j = 0;

		for (size_t i = 0; i < n; i++)
			in[i] = (unsigned char)rng();
		e = b64_encode(in, n);
		elen = strlen(e);
		if (!CHECK(elen == 4 * ((n + 2) / 3)))
			printf("    n=%zu\n", n);
		r = b64_decode(e, elen, out, sizeof out);
		if (!CHECK(r == (long)n && memcmp(in, out, n) == 0))
			printf("    n=%zu\n", n);
		/* The decoded size never exceeds what b64_decoded_max promises. */
		CHECK((size_t)r <= b64_decoded_max(elen));

		/* Ruby wraps at 60 columns; others add spaces and tabs. */
		wrapped = xmalloc(elen * 2 + 8);
		for (size_t i = 0; i < elen; i++) {
			if (i && i % 60 == 0) {
				wrapped[j++] = '\r';
				wrapped[j++] = '\n';
			} else if (i % 17 == 5) {
				wrapped[j++] = (i & 1) ? ' ' : '\t';
			}
			wrapped[j++] = e[i];
		}
		wrapped[j++] = '\n';
		memset(out, 0, sizeof out);
		r = b64_decode(wrapped, j, out, sizeof out);
		if (!CHECK(r == (long)n && memcmp(in, out, n) == 0))
			printf("    wrapped n=%zu\n", n);

		/* Exact capacity works; one byte less is -EMSGSIZE. */
		if (n > 0) {
			CHECK(b64_decode(e, elen, out, n) == (long)n);
			CHECK(b64_decode(e, elen, out, n - 1) == -EMSGSIZE);
		}
		{
			char into[410];
			CHECK(b64_encode_into(in, n, into) == elen && !strcmp(into, e));
		}
		free(wrapped);
		free(e);
	}
}

static void test_b64_invalid(void)
{
	static const char *const bad[] = {
		"QQ=",          /* incomplete quantum */
		"QQ",
		"Q",
		"QUJDQ",
		"Q===",         /* three pad characters */
		"====",
		"=QQQ",         /* data after padding */
		"QQ=A",
		"QQ==QQ==",
		"QQ==Q",
		"QUI=QQ==",
		"QQ===",
		"QU*D",         /* outside the alphabet */
		"QU-D",         /* base64url is not accepted */
		"QU_D",
		"QUJD\x01",
		"QUJD\xff",
		"QU\vD",        /* only space, tab, CR, LF count as whitespace */
	};
	unsigned char out[64];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (!CHECK(b64_decode(bad[i], strlen(bad[i]), out, sizeof out) == -EINVAL))
			printf("    input \"%s\"\n", bad[i]);
	/* An embedded NUL is just another invalid byte. */
	CHECK(b64_decode("QU\0D", 4, out, sizeof out) == -EINVAL);
	CHECK(b64_decode("", 0, out, sizeof out) == 0);
	CHECK(b64_decode(" \r\n\t", 4, out, sizeof out) == 0);
	CHECK(b64_decode("QQ==", 4, out, sizeof out) == 1 && out[0] == 'A');
	CHECK(b64_decode("QUI=", 4, out, sizeof out) == 2 && !memcmp(out, "AB", 2));
	CHECK(b64_decode("QQ==\r\n", 6, out, sizeof out) == 1);   /* trailing whitespace after pad */
	CHECK(b64_decode("Q Q = =", 7, out, sizeof out) == 1);
	CHECK(b64_decode("QUJD", 4, out, 0) == -EMSGSIZE);
	CHECK(b64_decoded_max(4) >= 3);
}

static void test_buf(void)
{
	struct buf b;
	char big[300];

	buf_init(&b, 10);
	CHECK(buf_append(&b, "0123456789", 10) == 0);
	CHECK(b.len == 10);
	CHECK(buf_append(&b, "x", 1) == -EMSGSIZE);
	CHECK(b.len == 10);
	CHECK(buf_appendf(&b, "%d", 1) == -EMSGSIZE);
	CHECK(buf_append(&b, "", 0) == 0);
	CHECK_STR(buf_str(&b), "0123456789");
	buf_consume(&b, 4);
	CHECK_STR(buf_str(&b), "456789");
	CHECK(buf_appends(&b, "abcd") == 0);
	CHECK_STR(buf_str(&b), "456789abcd");
	buf_consume(&b, 100);
	CHECK(b.len == 0);
	CHECK_STR(buf_str(&b), "");
	buf_reset(&b);
	buf_free(&b);
	CHECK(b.data == NULL && b.len == 0);

	/* Past the first allocation, with no limit. */
	buf_init(&b, 0);
	memset(big, 'a', sizeof big);
	for (int i = 0; i < 100; i++)
		CHECK(buf_append(&b, big, sizeof big) == 0);
	CHECK(b.len == 30000);
	CHECK(buf_appendf(&b, "%s-%d", "x", 42) == 0);
	CHECK(b.len == 30004 && !memcmp(b.data + 30000, "x-42", 4));
	CHECK(buf_append(&b, big, SIZE_MAX) == -EMSGSIZE);      /* overflow is caught, not wrapped */
	buf_free_secret(&b);
	CHECK(b.data == NULL);

	/* buf_str on a never-used buffer. */
	buf_init(&b, 0);
	CHECK_STR(buf_str(&b), "");
	buf_free(&b);
}

static void test_parse_uint(void)
{
	unsigned long long v = 7;

	CHECK(parse_uint("0", 0, 10, &v) == 0 && v == 0);
	CHECK(parse_uint("10", 0, 10, &v) == 0 && v == 10);
	CHECK(parse_uint("11", 0, 10, &v) == -ERANGE);
	CHECK(parse_uint("4", 5, 10, &v) == -ERANGE);
	CHECK(parse_uint("18446744073709551615", 0, ULLONG_MAX, &v) == 0 && v == ULLONG_MAX);
	CHECK(parse_uint("18446744073709551616", 0, ULLONG_MAX, &v) == -ERANGE);
	v = 7;
	CHECK(parse_uint("", 0, 10, &v) == -EINVAL);
	CHECK(parse_uint(NULL, 0, 10, &v) == -EINVAL);
	CHECK(parse_uint("-1", 0, 10, &v) == -EINVAL);
	CHECK(parse_uint("+1", 0, 10, &v) == -EINVAL);
	CHECK(parse_uint(" 1", 0, 10, &v) == -EINVAL);
	CHECK(parse_uint("1 ", 0, 10, &v) == -EINVAL);
	CHECK(parse_uint("1x", 0, 10, &v) == -EINVAL);
	CHECK(parse_uint("0x1", 0, 10, &v) == -EINVAL);
	CHECK(v == 7);          /* untouched on failure */
	CHECK(parse_uint("007", 0, 10, &v) == 0 && v == 7);
}

static void test_uuid(void)
{
	char u[37];

	CHECK(uuid_valid("11111111-2222-3333-4444-555555555555"));
	CHECK(uuid_valid("abcdef01-ABCD-4ef0-8abc-0123456789AB"));
	CHECK(!uuid_valid("abcdef01-ABCD-4ef0-8abc-0123456789A"));
	CHECK(!uuid_valid("abcdef01-ABCD-4ef0-8abc-0123456789ABC"));
	CHECK(!uuid_valid("abcdef01xABCD-4ef0-8abc-0123456789AB"));
	CHECK(!uuid_valid("abcdef01-ABCD-4ef0-8abc-0123456789AG"));
	CHECK(!uuid_valid("{bcdef01-ABCD-4ef0-8abc-0123456789A}"));
	CHECK(!uuid_valid("uuid:abcdef01-ABCD-4ef0-8abc-01234567"));
	CHECK(!uuid_valid("abcdef01ABCD4ef08abc0123456789ABCDEF"));
	CHECK(!uuid_valid(""));
	CHECK(!uuid_valid(NULL));
	for (int i = 0; i < 100; i++) {
		uuid_upper(u);
		CHECK(uuid_valid(u));
		CHECK(u[14] == '4');
		CHECK(strchr("89AB", u[19]) != NULL);
		for (int k = 0; k < 36; k++)
			CHECK(!(u[k] >= 'a' && u[k] <= 'f'));
	}
}

/* Which Commands get the $PSSenderInfo script: pwsh's server mode with nothing of its own to run. */
static void test_pwsh_server_argv(void)
{
	static const struct { const char *line; bool yes; } cases[] = {
		{ "/usr/bin/pwsh -NoLogo -NoProfile -sshs", true },
		{ "/usr/bin/pwsh -NoLogo -NoProfile -s", true },
		{ "/usr/bin/dotnet /opt/pwsh.dll -nol -nop -SSHServerMode", true },
		{ "/usr/bin/pwsh -ServerMode", true },
		{ "/usr/bin/pwsh /s", true },
		{ "/usr/bin/pwsh -NoLogo", false },
		{ "/usr/bin/pwsh -sshs -c Get-Date", false },
		{ "/usr/bin/pwsh -sshs -Command Get-Date", false },
		{ "/usr/bin/pwsh -sshs -ec AAAA", false },
		{ "/usr/bin/pwsh -sshs -EncodedCommand AAAA", false },
		{ "/usr/bin/pwsh -sshs -File /x.ps1", false },
		{ "/usr/bin/pwsh -sshs -ConfigurationFile /x.pssc", false },
		{ "/usr/bin/python3 /x/psrp_runspace.py", false },
		{ "/usr/bin/pwsh", false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *words = xstrdup(cases[i].line), *argv[16], *save = NULL;
		size_t n = 0;
		for (char *w = strtok_r(words, " ", &save); w && n < 16; w = strtok_r(NULL, " ", &save))
			argv[n++] = w;
		if (mon_pwsh_server_argv(argv, n) != cases[i].yes) {
			fprintf(stderr, "  %s\n", cases[i].line);
			CHECK(false);
		}
		free(words);
	}
}

static void test_str(void)
{
	char a[] = "  \t hello world \r\n", b[] = "", c[] = "   ", d[] = "x";

	CHECK_STR(str_trim(a), "hello world");
	CHECK_STR(str_trim(b), "");
	CHECK_STR(str_trim(c), "");
	CHECK_STR(str_trim(d), "x");
	CHECK(str_ieq("Basic", "bASIC"));
	CHECK(!str_ieq("Basic", "Basi"));
	CHECK(!str_ieq(NULL, "x"));
	CHECK(str_iprefix("Basic abc", "basic "));
	CHECK(!str_iprefix("Bas", "basic "));
	CHECK(!str_iprefix(NULL, "basic "));
	CHECK(ct_equal("abcdef", "abcdef", 6));
	CHECK(!ct_equal("abcdef", "abcdeg", 6));
	CHECK(!ct_equal("\0" "bcdef", "\1" "bcdef", 6));
	CHECK(ct_equal("a", "b", 0));
}

/* ---- soap ------------------------------------------------------------- */

#define URI_CMD "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
#define ACT_CREATE "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
#define ACT_COMMAND "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command"

/*
 * Envelopes are written once with placeholders for the prefixes, then
 * instantiated in each client's dialect: the parser must key on namespace
 * URIs only.
 */
enum style { PYWINRM, PYPSRP, STYLE_MAX };

static const char *const style_tok[STYLE_MAX][7][2] = {
	[PYWINRM] = {
		{ "{S}", "env" }, { "{A}", "a" }, { "{W}", "w" }, { "{P}", "p" }, { "{R}", "rsp" },
		{ "{MU}", "mustUnderstand=\"true\"" }, { "{XMLDECL}", "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n" },
	},
	[PYPSRP] = {
		{ "{S}", "s" }, { "{A}", "wsa" }, { "{W}", "wsman" }, { "{P}", "wsmv" }, { "{R}", "rsp" },
		{ "{MU}", "s:mustUnderstand=\"true\"" }, { "{XMLDECL}", "" },
	},
};

static char *subst(const char *tmpl, enum style st)
{
	struct buf b;
	char *s;

	buf_init(&b, 0);
	for (const char *p = tmpl; *p;) {
		size_t i;
		for (i = 0; i < 7; i++) {
			size_t n = strlen(style_tok[st][i][0]);
			if (!strncmp(p, style_tok[st][i][0], n)) {
				buf_appends(&b, style_tok[st][i][1]);
				p += n;
				break;
			}
		}
		if (i == 7)
			buf_append(&b, p++, 1);
	}
	s = xstrdup(buf_str(&b));
	buf_free(&b);
	return s;
}

#define ENV_OPEN "{XMLDECL}<{S}:Envelope xmlns:{S}=\"" NS_SOAP "\" xmlns:{A}=\"" NS_WSA \
	"\" xmlns:{W}=\"" NS_WSMAN "\" xmlns:{P}=\"" NS_WSMV "\" xmlns:{R}=\"" NS_RSP "\">"
#define ENV_CLOSE "</{S}:Envelope>"

#define HDR_COMMON(msgid, timeout) \
	"<{A}:To>http://windows-host:5985/wsman</{A}:To>" \
	"<{A}:ReplyTo><{A}:Address {MU}>" WSA_ANONYMOUS "</{A}:Address></{A}:ReplyTo>" \
	"<{W}:MaxEnvelopeSize {MU}>153600</{W}:MaxEnvelopeSize>" \
	"<{A}:MessageID>" msgid "</{A}:MessageID>" \
	"<{W}:Locale {MU} xml:lang=\"en-US\"/>" \
	"<{P}:DataLocale xml:lang=\"en-GB\"/>" \
	"<{P}:SessionId>uuid:11111111-0000-0000-0000-000000000000</{P}:SessionId>" \
	"<{W}:OperationTimeout>" timeout "</{W}:OperationTimeout>"

#define MSGID "uuid:AbCdEf01-2345-6789-aBcD-0123456789aB"

/* A Command request with selector, options, CDATA: every header we read. */
static const char req_command[] =
	ENV_OPEN "<{S}:Header>"
	HDR_COMMON(MSGID, "PT20S")
	"<{W}:ResourceURI {MU}>" URI_CMD "</{W}:ResourceURI>"
	"<{A}:Action {MU}>" ACT_COMMAND "</{A}:Action>"
	"<{W}:SelectorSet><{W}:Selector Name=\"ShellId\">11111111-2222-3333-4444-555555555555</{W}:Selector></{W}:SelectorSet>"
	"<{W}:OptionSet {MU}>\n"
	"  <{W}:Option Name=\"WINRS_CONSOLEMODE_STDIN\">TRUE</{W}:Option>\n"
	"  <{W}:Option Name=\"WINRS_SKIP_CMD_SHELL\" MustComply=\"true\">FALSE</{W}:Option>\n"
	"  <{W}:Option Name=\"protocolversion\" MustComply=\"1\">2.3</{W}:Option>\n"
	"</{W}:OptionSet>"
	"<{R}:CompressionType {MU}>xpress</{R}:CompressionType>"
	"</{S}:Header><{S}:Body>"
	"<{R}:CommandLine><{R}:Command><![CDATA[echo \"<&>\" >> \"%TEMP%\\x.tmp\"]]></{R}:Command>"
	"<{R}:Arguments>a&amp;b</{R}:Arguments></{R}:CommandLine>"
	"</{S}:Body>" ENV_CLOSE;

static int parse_str(const char *s, struct soap_req *req, struct soap_error *err)
{
	return soap_parse(s, strlen(s), req, err);
}

static void test_soap_parse_styles(void)
{
	for (int st = 0; st < STYLE_MAX; st++) {
		char *x = subst(req_command, (enum style)st);
		struct soap_req req;
		struct soap_error err;
		xmlNodePtr cl, cmd;
		char *t;

		if (!CHECK(parse_str(x, &req, &err) == 0)) {
			printf("    style %d: fault %d: %s\n", st, err.fault, err.arg);
			soap_req_free(&req);
			free(x);
			continue;
		}
		CHECK_STR(req.action, ACT_COMMAND);
		CHECK_STR(req.to, "http://windows-host:5985/wsman");
		CHECK_STR(req.message_id, MSGID);        /* verbatim, case kept */
		CHECK_STR(req.resource_uri, URI_CMD);
		CHECK_STR(req.reply_to, WSA_ANONYMOUS);
		CHECK_STR(req.locale, "en-US");
		CHECK_STR(req.data_locale, "en-GB");
		CHECK_STR(req.session_id, "uuid:11111111-0000-0000-0000-000000000000");
		CHECK(req.timeout_ms == 20000);
		CHECK(req.max_envelope == 153600);
		CHECK(req.compression_xpress);
		CHECK(req.n_selectors == 1);
		CHECK_STR(soap_selector(&req, "shellid"), "11111111-2222-3333-4444-555555555555");
		CHECK(soap_selector(&req, "CommandId") == NULL);
		if (CHECK(req.n_options == 3)) {
			CHECK_STR(req.options[0].name, "WINRS_CONSOLEMODE_STDIN");
			CHECK(!req.options[0].must_comply);
			CHECK(req.options[1].must_comply);
			CHECK(req.options[2].must_comply);
		}
		CHECK(soap_option_bool(&req, "WINRS_CONSOLEMODE_STDIN", false) == true);
		CHECK(soap_option_bool(&req, "winrs_skip_cmd_shell", true) == false);
		CHECK(soap_option_bool(&req, "protocolversion", true) == true);    /* not a bool */
		CHECK(soap_option_bool(&req, "absent", true) == true);
		CHECK_STR(soap_option(&req, "PROTOCOLVERSION"), "2.3");

		/* Go's client sends the command as CDATA. */
		cl = soap_child(req.body, NS_RSP, "CommandLine");
		cmd = soap_child(cl, NS_RSP, "Command");
		t = soap_text(cmd);
		CHECK_STR(t, "echo \"<&>\" >> \"%TEMP%\\x.tmp\"");
		free(t);
		t = soap_text(soap_next(cmd, NS_RSP, "Arguments"));
		CHECK_STR(t, "a&b");
		free(t);
		CHECK(soap_next(cmd, NS_RSP, "Nope") == NULL);
		CHECK(soap_child(cl, NS_WSMAN, "Command") == NULL);     /* right name, wrong namespace */
		t = soap_text(NULL);
		CHECK_STR(t, "");
		free(t);
		soap_req_free(&req);
		CHECK(req.doc == NULL && req.action == NULL);
		free(x);
	}
}

/* Build a request with the given OperationTimeout / MaxEnvelopeSize text. */
static int parse_with(const char *timeout, const char *maxenv, struct soap_req *req,
    struct soap_error *err)
{
	char *t = xasprintf(
	    "<s:Envelope xmlns:s=\"%s\" xmlns:a=\"%s\" xmlns:w=\"%s\"><s:Header>"
	    "<a:Action>%s</a:Action><a:MessageID>%s</a:MessageID>%s%s%s%s%s%s"
	    "</s:Header><s:Body/></s:Envelope>",
	    NS_SOAP, NS_WSA, NS_WSMAN, ACT_CREATE, MSGID,
	    timeout ? "<w:OperationTimeout>" : "", timeout ? timeout : "",
	    timeout ? "</w:OperationTimeout>" : "",
	    maxenv ? "<w:MaxEnvelopeSize>" : "", maxenv ? maxenv : "",
	    maxenv ? "</w:MaxEnvelopeSize>" : "");
	int r = parse_str(t, req, err);

	free(t);
	return r;
}

static void test_soap_timeouts(void)
{
	static const struct { const char *in; long long ms; } ok[] = {
		{ "PT20S", 20000 }, { "PT0.5S", 500 }, { "PT1M", 60000 }, { "P1DT1H", 90000000 },
		{ " PT60.000S ", 60000 }, { "PT0S", 0 }, { "PT1H1M1.25S", 3661250 },
	};
	static const char *const bad[] = { "PT-1S", "20", "PT", "P", "", "PT1", "T1S", "PT1X" };
	struct soap_req req;
	struct soap_error err;

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		if (CHECK(parse_with(ok[i].in, NULL, &req, &err) == 0)) {
			if (!CHECK(req.timeout_ms == ok[i].ms))
				printf("    %s -> %lld\n", ok[i].in, req.timeout_ms);
		}
		soap_req_free(&req);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK(parse_with(bad[i], NULL, &req, &err) == -EINVAL);
		if (!CHECK(err.fault == SF_INVALID_TIMEOUT))
			printf("    \"%s\" -> fault %d\n", bad[i], err.fault);
		soap_req_free(&req);
	}
	CHECK(parse_with("PT-1S", NULL, &req, &err) == -EINVAL);
	CHECK(strstr(err.arg, "PT-1S") != NULL);
	soap_req_free(&req);

	CHECK(parse_with(NULL, NULL, &req, &err) == 0);
	CHECK(req.timeout_ms == -1 && req.max_envelope == -1);
	soap_req_free(&req);

	CHECK(parse_with(NULL, "153600", &req, &err) == 0 && req.max_envelope == 153600);
	soap_req_free(&req);
	CHECK(parse_with(NULL, "8192", &req, &err) == 0 && req.max_envelope == 8192);
	soap_req_free(&req);
	CHECK(parse_with(NULL, "8191", &req, &err) == -EINVAL && err.fault == SF_MIN_ENVELOPE);
	soap_req_free(&req);
	CHECK(parse_with(NULL, "0", &req, &err) == -EINVAL && err.fault == SF_MIN_ENVELOPE);
	soap_req_free(&req);
	CHECK(parse_with(NULL, "lots", &req, &err) == -EINVAL && err.fault == SF_INVALID_HEADER);
	soap_req_free(&req);
	CHECK(parse_with(NULL, "4294967296", &req, &err) == -EINVAL && err.fault == SF_INVALID_HEADER);
	soap_req_free(&req);
}

static void test_soap_duration(void)
{
	CHECK(soap_duration_ms("PT20S") == 20000);
	CHECK(soap_duration_ms("PT0.5S") == 500);
	CHECK(soap_duration_ms("PT0.0005S") == 0);
	CHECK(soap_duration_ms("PT1M") == 60000);
	CHECK(soap_duration_ms("P1M") == 30LL * 86400000);      /* a month before T */
	CHECK(soap_duration_ms("P1DT1H") == 90000000);
	CHECK(soap_duration_ms("P1Y") == 365LL * 86400000);
	CHECK(soap_duration_ms("P2D") == 2 * 86400000LL);
	CHECK(soap_duration_ms("PT1000000000000S") == 1000000000000000LL);
	CHECK(soap_duration_ms("PT1000000000001S") == -EINVAL);
	CHECK(soap_duration_ms("P1000000000000Y") == -EINVAL);       /* over 9e15 ms */
	CHECK(soap_duration_ms(NULL) == -EINVAL);
	CHECK(soap_duration_ms("") == -EINVAL);
	CHECK(soap_duration_ms("P") == -EINVAL);
	CHECK(soap_duration_ms("PT") == -EINVAL);
	CHECK(soap_duration_ms("PTT1S") == -EINVAL);
	CHECK(soap_duration_ms("PT1S T") == -EINVAL);
	CHECK(soap_duration_ms("PT1D") == -EINVAL);
	CHECK(soap_duration_ms("P1H") == -EINVAL);
	CHECK(soap_duration_ms("P1S") == -EINVAL);
	CHECK(soap_duration_ms("PT1Y") == -EINVAL);
	CHECK(soap_duration_ms("PT-1S") == -EINVAL);
	CHECK(soap_duration_ms("-PT1S") == -EINVAL);
	CHECK(soap_duration_ms("PT+1S") == -EINVAL);
	CHECK(soap_duration_ms("PT.5S") == -EINVAL);
	CHECK(soap_duration_ms("PTnanS") == -EINVAL);
	CHECK(soap_duration_ms("PTinfS") == -EINVAL);
	CHECK(soap_duration_ms("pt1s") == -EINVAL);
	CHECK(soap_duration_ms("PT1S ") == -EINVAL);
	CHECK(soap_duration_ms("PT1") == -EINVAL);
}

static void test_soap_identify(void)
{
	static const char *const idents[] = {
		"<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:wsmid=\"" NS_WSMID "\">"
		"<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>",
		/* winrm id / Test-WSMan spelling */
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<s:Envelope xmlns:s=\"" NS_SOAP "\">\n  <s:Header></s:Header>\n"
		"  <s:Body>\n    <Identify xmlns=\"" NS_WSMID "\"></Identify>\n  </s:Body>\n</s:Envelope>\n",
	};

	for (size_t i = 0; i < ARRAY_SIZE(idents); i++) {
		struct soap_req req;
		struct soap_error err;

		if (!CHECK(parse_str(idents[i], &req, &err) == 0))
			printf("    fault %d: %s\n", err.fault, err.arg);
		CHECK(req.action == NULL && req.message_id == NULL);
		CHECK(soap_child(req.body, NS_WSMID, "Identify") != NULL);
		soap_req_free(&req);
	}
}

static void test_soap_required_headers(void)
{
	struct soap_req req;
	struct soap_error err;
	const char *t;

	t = "<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_WSA "\"><s:Header>"
	    "<a:MessageID>uuid:1</a:MessageID></s:Header><s:Body/></s:Envelope>";
	CHECK(parse_str(t, &req, &err) == -EINVAL);
	CHECK(err.fault == SF_HEADER_REQUIRED);
	CHECK_STR(err.arg, "Action");
	soap_req_free(&req);

	t = "<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_WSA "\"><s:Header>"
	    "<a:Action>x</a:Action></s:Header><s:Body/></s:Envelope>";
	CHECK(parse_str(t, &req, &err) == -EINVAL);
	CHECK(err.fault == SF_HEADER_REQUIRED);
	CHECK_STR(err.arg, "MessageID");
	soap_req_free(&req);

	t = "<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_WSA "\"><s:Header>"
	    "<a:Action>x</a:Action><a:MessageID>  </a:MessageID></s:Header><s:Body/></s:Envelope>";
	CHECK(parse_str(t, &req, &err) == -EINVAL && err.fault == SF_HEADER_REQUIRED);
	soap_req_free(&req);

	/* Action in the wrong namespace is not an Action. */
	t = "<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_WSA "\"><s:Header>"
	    "<Action>x</Action><a:MessageID>uuid:1</a:MessageID></s:Header><s:Body/></s:Envelope>";
	CHECK(parse_str(t, &req, &err) == -EINVAL && err.fault == SF_HEADER_REQUIRED);
	soap_req_free(&req);

	t = "<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_WSA "\"><s:Header>"
	    "<a:Action>x</a:Action><a:MessageID>uuid:1</a:MessageID><a:Action>y</a:Action>"
	    "</s:Header><s:Body/></s:Envelope>";
	CHECK(parse_str(t, &req, &err) == -EINVAL);
	CHECK(err.fault == SF_INVALID_HEADER);
	CHECK(strstr(err.arg, "Action") != NULL);
	soap_req_free(&req);

	/* No Body / no Header. */
	t = "<s:Envelope xmlns:s=\"" NS_SOAP "\"><s:Header/></s:Envelope>";
	CHECK(parse_str(t, &req, &err) == -EINVAL && err.fault == SF_SCHEMA_VALIDATION);
	soap_req_free(&req);
	t = "<s:Envelope xmlns:s=\"" NS_SOAP "\"><s:Body/></s:Envelope>";
	CHECK(parse_str(t, &req, &err) == -EINVAL && err.fault == SF_SCHEMA_VALIDATION);
	soap_req_free(&req);

	/* A MessageID longer than SOAP_MAX_ID is refused and not echoed. */
	{
		char id[SOAP_MAX_ID + 2];
		char *x;

		memset(id, 'a', sizeof id - 1);
		id[sizeof id - 1] = '\0';
		x = xasprintf("<s:Envelope xmlns:s=\"%s\" xmlns:a=\"%s\"><s:Header><a:Action>x</a:Action>"
		    "<a:MessageID>%s</a:MessageID></s:Header><s:Body/></s:Envelope>", NS_SOAP, NS_WSA, id);
		CHECK(parse_str(x, &req, &err) == -EINVAL && err.fault == SF_INVALID_HEADER);
		CHECK(req.message_id == NULL);
		soap_req_free(&req);
		free(x);
	}

	/* Selector without a Name. */
	t = "<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_WSA "\" xmlns:w=\"" NS_WSMAN "\"><s:Header>"
	    "<a:Action>x</a:Action><a:MessageID>uuid:1</a:MessageID>"
	    "<w:SelectorSet><w:Selector>v</w:Selector></w:SelectorSet></s:Header><s:Body/></s:Envelope>";
	CHECK(parse_str(t, &req, &err) == -EINVAL && err.fault == SF_SCHEMA_VALIDATION);
	soap_req_free(&req);
	/* Duplicate option (names compare case-insensitively). */
	t = "<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_WSA "\" xmlns:w=\"" NS_WSMAN "\"><s:Header>"
	    "<a:Action>x</a:Action><a:MessageID>uuid:1</a:MessageID>"
	    "<w:OptionSet><w:Option Name=\"A\">1</w:Option><w:Option Name=\"a\">2</w:Option></w:OptionSet>"
	    "</s:Header><s:Body/></s:Envelope>";
	CHECK(parse_str(t, &req, &err) == -EINVAL && err.fault == SF_INVALID_OPTIONS);
	soap_req_free(&req);
}

/* The parsed document (if any) holds no expansion of `needle`. */
static bool doc_lacks(const struct soap_req *req, const char *needle, size_t max_size)
{
	xmlChar *mem = NULL;
	int n = 0;
	bool ok;

	if (!req->doc)
		return true;
	xmlDocDumpMemory(req->doc, &mem, &n);
	ok = (size_t)n <= max_size && (!mem || !strstr((const char *)mem, needle));
	xmlFree(mem);
	return ok;
}

static void test_soap_hostile_xml(void)
{
	static const char laughs[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE lolz [\n"
		" <!ENTITY lol \"lol\">\n"
		" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
		" <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
		" <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
		" <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
		" <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
		" <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
		" <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
		" <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
		" <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
		"]>\n"
		"<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_WSA "\"><s:Header>"
		"<a:Action>&lol9;</a:Action><a:MessageID>uuid:1</a:MessageID></s:Header>"
		"<s:Body>&lol9;</s:Body></s:Envelope>";
	static const char xxe[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE foo [ <!ENTITY xxe SYSTEM \"file:///etc/passwd\"> ]>\n"
		"<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_WSA "\"><s:Header>"
		"<a:Action>&xxe;</a:Action><a:MessageID>uuid:1</a:MessageID></s:Header>"
		"<s:Body>&xxe;</s:Body></s:Envelope>";
	static const char ext_dtd[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE s:Envelope SYSTEM \"file:///etc/passwd\">\n"
		"<s:Envelope xmlns:s=\"" NS_SOAP "\"><s:Header/><s:Body/></s:Envelope>";
	static const char param_ent[] =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE foo [ <!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p; ]>\n"
		"<s:Envelope xmlns:s=\"" NS_SOAP "\"><s:Header/><s:Body/></s:Envelope>";
	static const char undeclared[] =
		"<s:Envelope xmlns:s=\"" NS_SOAP "\" xmlns:a=\"" NS_WSA "\"><s:Header>"
		"<a:Action>&xxe;</a:Action><a:MessageID>uuid:1</a:MessageID></s:Header>"
		"<s:Body/></s:Envelope>";
	struct soap_req req;
	struct soap_error err;

	CHECK(parse_str(laughs, &req, &err) == -EINVAL);
	CHECK(err.fault == SF_INVALID_XML);
	CHECK(strstr(err.arg, "document type") != NULL);
	CHECK(doc_lacks(&req, "lollollol", 4096));
	CHECK(req.action == NULL);
	soap_req_free(&req);

	CHECK(parse_str(xxe, &req, &err) == -EINVAL);
	CHECK(err.fault == SF_INVALID_XML);
	CHECK(doc_lacks(&req, "root:", 4096));
	CHECK(req.action == NULL);
	soap_req_free(&req);

	CHECK(parse_str(ext_dtd, &req, &err) == -EINVAL && err.fault == SF_INVALID_XML);
	CHECK(doc_lacks(&req, "root:", 4096));
	soap_req_free(&req);

	CHECK(parse_str(param_ent, &req, &err) == -EINVAL && err.fault == SF_INVALID_XML);
	CHECK(doc_lacks(&req, "root:", 4096));
	soap_req_free(&req);

	CHECK(parse_str(undeclared, &req, &err) == -EINVAL && err.fault == SF_INVALID_XML);
	soap_req_free(&req);
}

static char *nested(int depth)
{
	struct buf b;
	char *s;

	buf_init(&b, 0);
	buf_appendf(&b, "<s:Envelope xmlns:s=\"%s\" xmlns:a=\"%s\"><s:Header><a:Action>x</a:Action>"
	    "<a:MessageID>uuid:1</a:MessageID></s:Header><s:Body>", NS_SOAP, NS_WSA);
	for (int i = 0; i < depth; i++)
		buf_appends(&b, "<d>");
	for (int i = 0; i < depth; i++)
		buf_appends(&b, "</d>");
	buf_appends(&b, "</s:Body></s:Envelope>");
	s = xstrdup(buf_str(&b));
	buf_free(&b);
	return s;
}

static void test_soap_depth(void)
{
	struct soap_req req;
	struct soap_error err;
	char *x;

	/* Envelope and Body are two levels; the limit counts every element. */
	x = nested(SOAP_MAX_DEPTH - 2);
	CHECK(parse_str(x, &req, &err) == 0);
	soap_req_free(&req);
	free(x);

	x = nested(SOAP_MAX_DEPTH - 1);
	CHECK(parse_str(x, &req, &err) == -EINVAL && err.fault == SF_INVALID_XML);
	soap_req_free(&req);
	free(x);

	x = nested(1000);
	CHECK(parse_str(x, &req, &err) == -EINVAL);
	CHECK(err.fault == SF_INVALID_XML);
	CHECK(strstr(err.arg, "nested") != NULL);
	soap_req_free(&req);
	free(x);
}

static void test_soap_malformed(void)
{
	static const char *const bad[] = {
		"<s:Envelope xmlns:s=\"" NS_SOAP "\"><s:Header/><s:Body/>",          /* unclosed */
		"<s:Envelope xmlns:s=\"" NS_SOAP "\"><s:Header/><s:Body></s:Header></s:Envelope>",
		"<s:Envelope xmlns:s=\"" NS_SOAP "\"><s:Header/><s:Body/></s:Envelope><x/>",
		"<s:Envelope><s:Header/><s:Body/></s:Envelope>",                       /* unbound prefix */
		"<Envelope xmlns=\"http://schemas.xmlsoap.org/soap/envelope/\"><Header/><Body/></Envelope>",
		"<x/>",
		"hello",
		"<",
		"\xef\xbb\xbf",
		"<s:Envelope xmlns:s=\"" NS_SOAP "\"><s:Header/><s:Body>\xff\xfe</s:Body></s:Envelope>",
		"<s:Envelope xmlns:s=\"" NS_SOAP "\" a=\"1\" a=\"2\"><s:Header/><s:Body/></s:Envelope>",
	};
	struct soap_req req;
	struct soap_error err;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = parse_str(bad[i], &req, &err);
		if (!CHECK(r == -EINVAL && err.fault == SF_INVALID_XML))
			printf("    case %zu: r=%d fault=%d\n", i, r, err.fault);
		CHECK(err.arg[0] != '\0');
		soap_req_free(&req);
	}
	CHECK(soap_parse("", 0, &req, &err) == -EINVAL && err.fault == SF_INVALID_XML);
	soap_req_free(&req);
	CHECK(soap_parse("\0\0\0", 3, &req, &err) == -EINVAL && err.fault == SF_INVALID_XML);
	soap_req_free(&req);
	/* A NUL in the middle is not padding. */
	CHECK(soap_parse("<s:Envelope xmlns:s=\"" NS_SOAP "\">\0<s:Header/><s:Body/></s:Envelope>",
	    sizeof("<s:Envelope xmlns:s=\"" NS_SOAP "\">\0<s:Header/><s:Body/></s:Envelope>") - 1,
	    &req, &err) == -EINVAL);
	soap_req_free(&req);
}

static void test_soap_trailing_nul(void)
{
	char *x = subst(req_command, PYWINRM);
	size_t n = strlen(x);
	char *padded = xcalloc(1, n + 16);
	struct soap_req req;
	struct soap_error err;

	memcpy(padded, x, n);
	/* OMI pads decrypted plaintext with NULs up to the cipher block. */
	CHECK(soap_parse(padded, n + 16, &req, &err) == 0);
	CHECK_STR(req.message_id, MSGID);
	soap_req_free(&req);
	free(padded);
	free(x);
}

/* The parser sees UTF-8 only: UTF-16 is transcoded, other encodings are refused. */
static void test_soap_encodings(void)
{
	char *x = subst(req_command, PYWINRM);
	size_t n = strlen(x);
	unsigned char *u16 = xcalloc(2, n + 1);
	struct soap_req req;
	struct soap_error err;
	struct buf b;

	/* UTF-16LE with a BOM and a declaration saying so. */
	u16[0] = 0xff;
	u16[1] = 0xfe;
	for (size_t i = 0; i < n; i++)
		u16[2 + 2 * i] = (unsigned char)x[i];
	CHECK(soap_parse(u16, 2 + 2 * n, &req, &err) == 0);
	CHECK_STR(req.message_id, MSGID);
	soap_req_free(&req);

	/* Any other declared encoding: a fault that says what is accepted. */
	buf_init(&b, 0);
	buf_appendf(&b, "<?xml version=\"1.0\" encoding=\"IBM037\"?>%s", x);
	CHECK(soap_parse(b.data, b.len, &req, &err) == -EINVAL);
	CHECK(err.fault == SF_INVALID_XML);
	CHECK(strstr(err.arg, "IBM037") && strstr(err.arg, "Only UTF-8 and UTF-16"));
	soap_req_free(&req);
	buf_reset(&b);
	buf_appendf(&b, "<?xml version='1.0' encoding = 'ucs-4'?>%s", x);
	CHECK(soap_parse(b.data, b.len, &req, &err) == -EINVAL && strstr(err.arg, "ucs-4"));
	soap_req_free(&req);

	/* EBCDIC bytes with no readable declaration: not UTF-8 text. */
	{
		static const unsigned char ebcdic[] = { 0x4c, 0x6f, 0xa7, 0x94, 0x93, 0x40, 0xa5, 0x85 };
		CHECK(soap_parse(ebcdic, sizeof ebcdic, &req, &err) == -EINVAL);
		CHECK(err.fault == SF_INVALID_XML);
		soap_req_free(&req);
	}
	buf_free(&b);
	free(u16);
	free(x);
}

/* Text of the first element named `name` anywhere below n. */
static char *find_text(xmlNodePtr n, const char *ns, const char *name)
{
	for (; n; n = n->next) {
		char *t;
		if (soap_is(n, ns, name))
			return soap_text(n);
		if ((t = find_text(n->children, ns, name)))
			return t;
	}
	return NULL;
}

static void test_soap_fault(void)
{
	char *x = subst(req_command, PYPSRP);
	struct soap_req req, fr;
	struct soap_error err;
	struct buf out;
	int status = 0;
	char *t;

	CHECK(parse_str(x, &req, &err) == 0);
	buf_init(&out, 0);
	CHECK(soap_fault(&req, SF_TIMED_OUT, NULL, "host.example", &out, &status) == 0);
	CHECK(status == 500);
	buf_str(&out);
	CHECK(strstr((char *)out.data, "Code=\"2150858793\"") != NULL);
	CHECK(strstr((char *)out.data, "s:Receiver") != NULL);
	CHECK(strstr((char *)out.data, "w:TimedOut") != NULL);
	CHECK(strstr((char *)out.data, "OperationTimeout") != NULL);
	CHECK(strstr((char *)out.data, "Machine=\"host.example\"") != NULL);
	CHECK(soap_fault_code(SF_TIMED_OUT) == 2150858793UL);

	/* The fault is a well-formed envelope whose RelatesTo is our MessageID. */
	if (CHECK(soap_parse(out.data, out.len, &fr, &err) == 0)) {
		t = find_text(fr.header, NS_WSA, "RelatesTo");
		CHECK_STR(t, MSGID);
		free(t);
		CHECK_STR(fr.action, "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault");
		CHECK(fr.message_id && !strncmp(fr.message_id, "uuid:", 5) && uuid_valid(fr.message_id + 5));
		t = find_text(fr.body, NS_SOAP, "Value");
		CHECK_STR(t, "s:Receiver");
		free(t);
	}
	soap_req_free(&fr);
	buf_free(&out);

	/* Without a request (unparsable input): no RelatesTo at all. */
	buf_init(&out, 0);
	CHECK(soap_fault(NULL, SF_ACCESS_DENIED, NULL, NULL, &out, &status) == 0);
	buf_str(&out);
	CHECK(strstr((char *)out.data, "RelatesTo") == NULL);
	CHECK(strstr((char *)out.data, "Machine=\"localhost\"") != NULL);
	buf_free(&out);

	/* Argument text is data: markup in it is escaped, not interpreted. */
	buf_init(&out, 0);
	CHECK(soap_fault(&req, SF_ACTION_NOT_SUPPORTED, "<a:Evil/>&amp;%s%n", NULL, &out, &status) == 0);
	CHECK(strstr((char *)buf_str(&out), "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault") != NULL);
	if (CHECK(soap_parse(out.data, out.len, &fr, &err) == 0)) {
		t = find_text(fr.body, NS_FAULT, "Message");
		CHECK(t && strstr(t, "The action <a:Evil/>&amp;%s%n is not supported"));
		free(t);
	}
	soap_req_free(&fr);
	buf_free(&out);

	/* Every fault renders into a parseable envelope. */
	for (int f = 0; f < SF__MAX; f++) {
		buf_init(&out, 0);
		CHECK(soap_fault(&req, (enum soap_fault)f, "arg", "m", &out, &status) == 0);
		if (!CHECK(soap_parse(out.data, out.len, &fr, &err) == 0))
			printf("    fault %d does not parse back\n", f);
		CHECK(soap_fault_code((enum soap_fault)f) != 0);
		soap_req_free(&fr);
		buf_free(&out);
	}
	soap_req_free(&req);
	free(x);
}

/*
 * Faults quote request text (the timeout value, the parser's message)
 * through fixed-size buffers; cutting that text must not leave half a
 * UTF-8 character, or the client cannot parse the fault it is sent.
 */
static void test_soap_fault_utf8(void)
{
	struct soap_req req, fr;
	struct soap_error err;
	struct buf out;
	int status;

	for (int pad = 190; pad < 210; pad++) {
		char *tmo = xmalloc((size_t)pad + 64);
		int r;

		memset(tmo, 'P', (size_t)pad);
		strcpy(tmo + pad, "\xc3\xa9\xc3\xa9\xc3\xa9\xe2\x82\xac\xe2\x82\xac");
		r = parse_with(tmo, NULL, &req, &err);
		CHECK(r == -EINVAL && err.fault == SF_INVALID_TIMEOUT);
		buf_init(&out, 0);
		soap_fault(&req, err.fault, err.arg, NULL, &out, &status);
		if (!CHECK(soap_parse(out.data, out.len, &fr, &err) == 0)) {
			printf("    timeout of %d ASCII + multibyte: fault unparseable (%s)\n", pad, err.arg);
			pad = 1000;     /* one report is enough */
		}
		soap_req_free(&fr);
		soap_req_free(&req);
		buf_free(&out);
		free(tmo);
	}
}

static void test_soap_reply(void)
{
	static const char *const ids[] = { MSGID, "uuid:abcdef01-2345-6789-abcd-0123456789ab",
		"uuid:ABCDEF01-2345-6789-ABCD-0123456789AB", "urn:x-odd&id<'\">" };

	for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
		struct soap_req req, rr;
		struct soap_error err;
		struct soap_reply rep;
		struct buf out;
		char *x, *esc, *t;

		/* Put the id through XML escaping on the way in. */
		{
			struct buf e;
			buf_init(&e, 0);
			for (const char *p = ids[i]; *p; p++) {
				if (*p == '&') buf_appends(&e, "&amp;");
				else if (*p == '<') buf_appends(&e, "&lt;");
				else buf_append(&e, p, 1);
			}
			esc = xstrdup(buf_str(&e));
			buf_free(&e);
		}
		x = xasprintf("<s:Envelope xmlns:s=\"%s\" xmlns:a=\"%s\"><s:Header><a:Action>%s</a:Action>"
		    "<a:MessageID>%s</a:MessageID></s:Header><s:Body/></s:Envelope>",
		    NS_SOAP, NS_WSA, ACT_CREATE, esc);
		if (!CHECK(parse_str(x, &req, &err) == 0)) {
			soap_req_free(&req);
			free(x);
			free(esc);
			continue;
		}
		CHECK_STR(req.message_id, ids[i]);
		CHECK(soap_reply_begin(&rep, &req, ACT_CREATE "Response") == 0);
		soap_w_start(&rep, "x:ResourceCreated");
		soap_w_elem(&rep, "a:Address", "http://h:5985/wsman");
		soap_w_start(&rep, "a:ReferenceParameters");
		soap_w_start(&rep, "w:SelectorSet");
		soap_w_start(&rep, "w:Selector");
		soap_w_attr(&rep, "Name", "ShellId");
		soap_w_text(&rep, "11111111-2222-3333-4444-555555555555");
		/* open elements are closed by soap_reply_end */
		buf_init(&out, 0);
		CHECK(soap_reply_end(&rep, &out) == 0);
		if (CHECK(soap_parse(out.data, out.len, &rr, &err) == 0)) {
			xmlNodePtr rc = soap_child(rr.body, NS_WST, "ResourceCreated");
			CHECK_STR(rr.action, ACT_CREATE "Response");
			CHECK_STR(rr.to, WSA_ANONYMOUS);
			t = find_text(rr.header, NS_WSA, "RelatesTo");
			CHECK_STR(t, ids[i]);
			free(t);
			CHECK(rc != NULL);
			t = find_text(rc, NS_WSMAN, "Selector");
			CHECK_STR(t, "11111111-2222-3333-4444-555555555555");
			free(t);
		} else {
			printf("    %s\n", err.arg);
		}
		soap_req_free(&rr);
		buf_free(&out);
		soap_req_free(&req);
		free(x);
		free(esc);
	}

	/* Identify's reply has an empty header and no RelatesTo. */
	{
		struct soap_reply rep;
		struct buf out;
		xmlDocPtr d;

		soap_reply_begin(&rep, NULL, NULL);
		soap_w_start(&rep, "wsmid:IdentifyResponse");
		soap_w_attr(&rep, "xmlns:wsmid", NS_WSMID);
		soap_w_elem(&rep, "wsmid:ProductVendor", "winrmd");
		buf_init(&out, 0);
		CHECK(soap_reply_end(&rep, &out) == 0);
		d = xmlReadMemory((const char *)out.data, (int)out.len, NULL, NULL, XML_PARSE_NONET);
		CHECK(d != NULL);
		xmlFreeDoc(d);
		CHECK(strstr((char *)buf_str(&out), "RelatesTo") == NULL);
		buf_free(&out);
	}

	/* An abandoned reply frees cleanly. */
	{
		struct soap_reply rep;
		struct soap_req req;
		struct soap_error err;
		char *x = subst(req_command, PYWINRM);

		parse_str(x, &req, &err);
		soap_reply_begin(&rep, &req, "x");
		soap_w_start(&rep, "x:Body");
		soap_reply_abort(&rep);
		CHECK(rep.w == NULL && rep.xbuf == NULL);
		soap_req_free(&req);
		free(x);
	}
}

/* ---- auth_basic_parse ------------------------------------------------- */

static int basic_of(const char *scheme, const void *cred, size_t n, char **u, char **p)
{
	char *e = b64_encode(cred, n);
	char *h = xasprintf("%s%s", scheme, e);
	int r = auth_basic_parse(h, u, p);

	free(e);
	free(h);
	return r;
}

static void test_auth_basic(void)
{
	char *u, *p;
	char big[2048];

	CHECK(auth_basic_parse("Basic dXNlcjpwYXNz", &u, &p) == 0);
	CHECK_STR(u, "user");
	CHECK_STR(p, "pass");
	free(u);
	free(p);

	static const char *const schemes[] = { "basic ", "BASIC ", "bAsIc ", "Basic    ", "Basic \t" };
	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
		if (CHECK(basic_of(schemes[i], "user:pass", 9, &u, &p) == 0))
			CHECK(!strcmp(u, "user") && !strcmp(p, "pass"));
		free(u);
		free(p);
	}
	/* Whitespace inside the base64 is tolerated (b64_decode skips it). */
	CHECK(auth_basic_parse("Basic dXNl cjpw YXNz \r\n", &u, &p) == 0);
	free(u);
	free(p);

	CHECK(basic_of("Basic ", "user:", 5, &u, &p) == 0);      /* an empty password is the PAM's call */
	CHECK_STR(p, "");
	free(u);
	free(p);
	CHECK(basic_of("Basic ", "DOMAIN\\user:pa:ss", 17, &u, &p) == 0);
	CHECK_STR(u, "DOMAIN\\user");
	CHECK_STR(p, "pa:ss");
	free(u);
	free(p);

	/* Refusals leave both outputs NULL. */
	u = p = (char *)"x";
	CHECK(basic_of("Basic ", "userpass", 8, &u, &p) == -EINVAL);
	CHECK(u == NULL && p == NULL);
	CHECK(basic_of("Basic ", ":pass", 5, &u, &p) == -EINVAL);
	CHECK(basic_of("Basic ", "", 0, &u, &p) == -EINVAL);
	CHECK(basic_of("Basic ", "us\0er:pass", 10, &u, &p) == -EINVAL);
	CHECK(basic_of("Basic ", "user:pa\0ss", 10, &u, &p) == -EINVAL);
	CHECK(basic_of("Basic ", "user:pass\0", 10, &u, &p) == -EINVAL);
	CHECK(auth_basic_parse("Basic !!!!", &u, &p) == -EINVAL);
	CHECK(auth_basic_parse("Basic dXNlcjpwYXNz=", &u, &p) == -EINVAL);
	CHECK(auth_basic_parse("Basic dXNlcjpwYXN", &u, &p) == -EINVAL);
	CHECK(auth_basic_parse("Basic ", &u, &p) == -EINVAL);
	CHECK(auth_basic_parse("Basic", &u, &p) == -EINVAL);
	CHECK(auth_basic_parse("Basicx dXNlcjpwYXNz", &u, &p) == -EINVAL);
	CHECK(auth_basic_parse("Bearer dXNlcjpwYXNz", &u, &p) == -EINVAL);
	CHECK(auth_basic_parse("Negotiate TlRMTVNTUAABAAAA", &u, &p) == -EINVAL);
	CHECK(auth_basic_parse(" Basic dXNlcjpwYXNz", &u, &p) == -EINVAL);
	CHECK(auth_basic_parse("", &u, &p) == -EINVAL);
	CHECK(u == NULL && p == NULL);

	/* Length limits: AUTH_MAX_USER / AUTH_MAX_PASSWORD are inclusive. */
	memset(big, 'u', AUTH_MAX_USER);
	big[AUTH_MAX_USER] = ':';
	big[AUTH_MAX_USER + 1] = 'p';
	CHECK(basic_of("Basic ", big, AUTH_MAX_USER + 2, &u, &p) == 0);
	CHECK(u && strlen(u) == AUTH_MAX_USER);
	free(u);
	free(p);
	memset(big, 'u', AUTH_MAX_USER + 1);
	big[AUTH_MAX_USER + 1] = ':';
	big[AUTH_MAX_USER + 2] = 'p';
	CHECK(basic_of("Basic ", big, AUTH_MAX_USER + 3, &u, &p) == -EINVAL);

	big[0] = 'u';
	big[1] = ':';
	memset(big + 2, 'p', AUTH_MAX_PASSWORD);
	CHECK(basic_of("Basic ", big, 2 + AUTH_MAX_PASSWORD, &u, &p) == 0);
	CHECK(p && strlen(p) == AUTH_MAX_PASSWORD);
	free(u);
	free(p);
	memset(big + 2, 'p', AUTH_MAX_PASSWORD + 1);
	CHECK(basic_of("Basic ", big, 2 + AUTH_MAX_PASSWORD + 1, &u, &p) == -EINVAL);

	/* A header past AUTH_MAX_HEADER is refused before decoding. */
	{
		char *h = xmalloc(AUTH_MAX_HEADER + 32);
		strcpy(h, "Basic dXNlcjpwYXNz");
		memset(h + 18, ' ', AUTH_MAX_HEADER);
		h[18 + AUTH_MAX_HEADER] = '\0';
		CHECK(auth_basic_parse(h, &u, &p) == -EINVAL);
		free(h);
	}
}

/* ---- ipc -------------------------------------------------------------- */

static void on_msg_unused(struct ipc_chan *ch, struct ipc_msg *m, void *ud)
{
	(void)ch; (void)m; (void)ud;
}

static void on_close_unused(struct ipc_chan *ch, void *ud)
{
	(void)ch; (void)ud;
}

/* Send o through a real channel on sv[0]; returns 0 on success. */
static int chan_send(int fd, struct ipc_out *o)
{
	sd_event *ev = NULL;
	struct ipc_chan *ch = NULL;
	int r;

	if (sd_event_new(&ev) < 0)
		return -1;
	r = ipc_chan_new(ev, dup(fd), on_msg_unused, on_close_unused, NULL, &ch);
	if (r == 0) {
		r = ipc_send(ch, o);
		ipc_chan_free(ch);
	}
	sd_event_unref(ev);
	return r;
}

static void close_msg_fds(struct ipc_msg *m)
{
	for (size_t i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0) {
			close(m->fds[i]);
			m->fds[i] = -1;
		}
}

static unsigned char ipc_rbuf[IPC_MAX_MSG];

/* A compromised worker cannot replay an AUTHENTICATE: each challenge verifies once. */
static void test_mon_ntlm_challenge_single_use(void)
{
	unsigned char a[8], b[8], first[8], unknown[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	mon_ntlm_challenges_forget();
	mon_ntlm_challenge_issue(a);
	mon_ntlm_challenge_issue(b);
	CHECK(memcmp(a, b, 8) != 0);
	CHECK(!mon_ntlm_challenge_take(unknown));
	CHECK(mon_ntlm_challenge_take(b));
	CHECK(!mon_ntlm_challenge_take(b));
	CHECK(mon_ntlm_challenge_take(a));
	CHECK(!mon_ntlm_challenge_take(a));
	/* A full table drops the oldest. */
	mon_ntlm_challenge_issue(first);
	for (int i = 0; i < MON_NTLM_CHALLENGES_MAX; i++)
		mon_ntlm_challenge_issue(a);
	CHECK(!mon_ntlm_challenge_take(first));
	CHECK(mon_ntlm_challenge_take(a));
	/* A restarted worker's handshakes are gone: so are their challenges. */
	mon_ntlm_challenge_issue(a);
	mon_ntlm_challenges_forget();
	CHECK(!mon_ntlm_challenge_take(a));
}

/* A configuration the monitor could not send to the worker is refused when read. */
static void test_conf_dump_too_large(void)
{
	struct buf b;
	struct conf c;
	char err[512] = "";
	int r;

	buf_init(&b, 0);
	for (int i = 0; i < 40; i++) {
		buf_appendf(&b, "[CertMapping m%d]\nUser = alice\nSubject = CN=", i);
		for (int j = 0; j < 4000; j++)
			buf_appends(&b, "x");
		buf_appends(&b, "\n");
	}
	r = conf_parse((const char *)b.data, b.len, "big.conf", &c, err, sizeof err);
	CHECK(r == -EINVAL);
	CHECK(strstr(err, "handed to the worker") != NULL);
	if (r == 0)
		conf_free(&c);
	buf_free(&b);
}

/* Sizes come from the network: an oversized field or message is refused, never fatal. */
static void test_ipc_encode_refused(void)
{
	int sv[2], p[2];
	struct ipc_out o;
	struct ipc_msg m;
	char *s = xmalloc(IPC_MAX_STRING + 2);

	if (!CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) == 0))
		return;
	memset(s, 'z', IPC_MAX_STRING + 1);
	s[IPC_MAX_STRING + 1] = '\0';

	/* One field past IPC_MAX_STRING: sticky -E2BIG, later fields ignored. */
	ipc_out_init(&o, IPC_SPAWN);
	ipc_put_u32(&o, 1);
	ipc_put_str(&o, s);
	CHECK(o.err == -E2BIG);
	ipc_put_str(&o, "after");
	CHECK(o.err == -E2BIG);
	CHECK(chan_send(sv[0], &o) == -E2BIG);

	/* Fields each under the limit, together past IPC_MAX_MSG: -EMSGSIZE. */
	s[IPC_MAX_STRING / 2] = '\0';
	ipc_out_init(&o, IPC_SPAWN);
	for (int i = 0; i < 5; i++)
		ipc_put_str(&o, s);
	CHECK(o.err == -EMSGSIZE);
	CHECK(chan_send(sv[0], &o) == -EMSGSIZE);

	/* Too many descriptors: refused, and every one of them closed. */
	if (CHECK(pipe(p) == 0)) {
		ipc_out_init(&o, IPC_SPAWN_RESULT);
		for (int i = 0; i < IPC_MAX_FDS; i++)
			ipc_put_fd(&o, dup(p[0]));
		ipc_put_fd(&o, p[0]);
		CHECK(o.err == -EMSGSIZE);
		CHECK(fcntl(p[0], F_GETFD) < 0);
		CHECK(chan_send(sv[0], &o) == -EMSGSIZE);
		close(p[1]);
	}
	/* Nothing reached the peer, and the channel still works. */
	CHECK(ipc_recv_blocking(sv[1], ipc_rbuf, sizeof ipc_rbuf, &m) < 0);
	ipc_out_init(&o, IPC_CONFIG_DONE);
	CHECK(chan_send(sv[0], &o) == 0);
	CHECK(ipc_recv_blocking(sv[1], ipc_rbuf, sizeof ipc_rbuf, &m) == 0 && m.type == IPC_CONFIG_DONE);
	free(s);
	close(sv[0]);
	close(sv[1]);
}

static void test_ipc_roundtrip(void)
{
	int sv[2];
	struct ipc_out o;
	struct ipc_msg m;
	const unsigned char bin[] = { 0, 1, 2, 0, 0xff };
	size_t n;
	const unsigned char *b;

	if (!CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0))
		return;
	ipc_out_init(&o, IPC_AUTH_RESULT);
	ipc_put_u32(&o, 7);
	ipc_put_i32(&o, -5);
	ipc_put_u64(&o, 0x0123456789abcdefULL);
	ipc_put_str(&o, "alice");
	ipc_put_str(&o, "");
	ipc_put_str(&o, NULL);
	ipc_put_bytes(&o, bin, sizeof bin);
	ipc_put_bytes(&o, NULL, 0);
	CHECK(chan_send(sv[0], &o) == 0);

	CHECK(ipc_recv_blocking(sv[1], ipc_rbuf, sizeof ipc_rbuf, &m) == 0);
	CHECK(m.type == IPC_AUTH_RESULT);
	CHECK(ipc_u32(&m) == 7);
	CHECK(ipc_i32(&m) == -5);
	CHECK(ipc_u64(&m) == 0x0123456789abcdefULL);
	CHECK_STR(ipc_str(&m), "alice");
	CHECK_STR(ipc_str(&m), "");
	CHECK_STR(ipc_str(&m), "");
	b = ipc_bytes(&m, &n);
	CHECK(b && n == sizeof bin && !memcmp(b, bin, n));
	b = ipc_bytes(&m, &n);
	CHECK(b && n == 0);
	CHECK(!m.bad);
	CHECK(ipc_end(&m));

	/* A largest-allowed string survives intact. */
	{
		char *s = xmalloc(IPC_MAX_STRING + 1);
		memset(s, 'z', IPC_MAX_STRING);
		s[IPC_MAX_STRING] = '\0';
		ipc_out_init(&o, IPC_CONFIG);
		ipc_put_str(&o, s);
		CHECK(chan_send(sv[0], &o) == 0);
		CHECK(ipc_recv_blocking(sv[1], ipc_rbuf, sizeof ipc_rbuf, &m) == 0);
		CHECK(m.type == IPC_CONFIG);
		CHECK_STR(ipc_str(&m), s);
		CHECK(ipc_end(&m));
		free(s);
	}
	close(sv[0]);
	close(sv[1]);
}

/* Send raw bytes as one packet and receive them as a message. */
static bool raw_msg(int sv[2], const void *p, size_t n, struct ipc_msg *m)
{
	if (send(sv[0], p, n, 0) != (ssize_t)n)
		return false;
	return ipc_recv_blocking(sv[1], ipc_rbuf, sizeof ipc_rbuf, m) == 0;
}

static void test_ipc_malformed(void)
{
	int sv[2];
	struct ipc_msg m;
	unsigned char pkt[64];
	uint32_t v;

	if (!CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0))
		return;

	/* Truncated u32 / u64. */
	v = IPC_CONFIG;
	memcpy(pkt, &v, 4);
	memcpy(pkt + 4, "\1\2\3", 3);
	CHECK(raw_msg(sv, pkt, 7, &m));
	CHECK(ipc_u32(&m) == 0 && m.bad);
	CHECK(raw_msg(sv, pkt, 7, &m));
	CHECK(ipc_u64(&m) == 0 && m.bad);
	CHECK(!ipc_end(&m));

	/* Packet shorter than the type itself. */
	CHECK(raw_msg(sv, pkt, 2, &m));
	CHECK(m.bad && !ipc_end(&m));

	/* A string length beyond the packet. */
	v = 1000;
	memcpy(pkt + 4, &v, 4);
	memcpy(pkt + 8, "abc", 4);
	CHECK(raw_msg(sv, pkt, 12, &m));
	CHECK_STR(ipc_str(&m), "");
	CHECK(m.bad);

	/* A length that would overflow. */
	v = 0xffffffffu;
	memcpy(pkt + 4, &v, 4);
	CHECK(raw_msg(sv, pkt, 12, &m));
	{
		size_t n = 99;
		CHECK(ipc_bytes(&m, &n) == NULL && n == 0 && m.bad);
	}

	/* Missing NUL terminator: "abcd" with length 3. */
	v = 3;
	memcpy(pkt + 4, &v, 4);
	memcpy(pkt + 8, "abcd", 4);
	CHECK(raw_msg(sv, pkt, 12, &m));
	CHECK_STR(ipc_str(&m), "");
	CHECK(m.bad);
	/* Length exactly to the end of the packet, terminator missing. */
	CHECK(raw_msg(sv, pkt, 11, &m));
	CHECK_STR(ipc_str(&m), "");
	CHECK(m.bad);

	/* An embedded NUL: fine as bytes, not as a string. */
	memcpy(pkt + 8, "a\0c", 4);
	CHECK(raw_msg(sv, pkt, 12, &m));
	CHECK_STR(ipc_str(&m), "");
	CHECK(m.bad);
	CHECK(raw_msg(sv, pkt, 12, &m));
	{
		size_t n;
		const unsigned char *b = ipc_bytes(&m, &n);
		CHECK(b && n == 3 && !memcmp(b, "a\0c", 3));
		CHECK(ipc_end(&m));
	}

	/* A trailing byte. */
	v = 42;
	memcpy(pkt + 4, &v, 4);
	pkt[8] = 0;
	CHECK(raw_msg(sv, pkt, 9, &m));
	CHECK(ipc_u32(&m) == 42 && !m.bad);
	CHECK(!ipc_end(&m));
	CHECK(raw_msg(sv, pkt, 8, &m));
	CHECK(ipc_u32(&m) == 42 && ipc_end(&m));

	/* Once bad, every later read fails too. */
	CHECK(raw_msg(sv, pkt, 6, &m));
	CHECK(ipc_u32(&m) == 0 && m.bad);
	CHECK(ipc_u32(&m) == 0 && ipc_u64(&m) == 0);
	CHECK(ipc_fd(&m, 0) == -EBADF);

	/* A packet larger than the receive buffer is truncated: bad. */
	{
		unsigned char small[16];
		unsigned char big[64] = { 0 };
		CHECK(send(sv[0], big, sizeof big, 0) == (ssize_t)sizeof big);
		CHECK(ipc_recv_blocking(sv[1], small, sizeof small, &m) == 0);
		CHECK(m.bad);
	}

	/* The peer went away. */
	close(sv[0]);
	CHECK(ipc_recv_blocking(sv[1], ipc_rbuf, sizeof ipc_rbuf, &m) == -ECONNRESET);
	close(sv[1]);
}

static void test_ipc_fds(void)
{
	int sv[2], pfd[2];
	struct ipc_out o;
	struct ipc_msg m;
	char got[16] = "";
	int fd;

	if (!CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0))
		return;
	if (!CHECK(pipe(pfd) == 0))
		return;

	/* The write end travels over SCM_RIGHTS; ours is closed by the send. */
	ipc_out_init(&o, IPC_SPAWN_RESULT);
	ipc_put_u32(&o, 1);
	ipc_put_fd(&o, pfd[1]);
	CHECK(chan_send(sv[0], &o) == 0);
	CHECK(fcntl(pfd[1], F_GETFD) < 0);

	CHECK(ipc_recv_blocking(sv[1], ipc_rbuf, sizeof ipc_rbuf, &m) == 0);
	CHECK(m.nfds == 1);
	CHECK(ipc_u32(&m) == 1);
	fd = ipc_fd(&m, 0);
	CHECK(fd >= 0);
	CHECK(ipc_fd(&m, 0) == -EBADF && m.bad);      /* taking it twice is misuse */
	m.bad = false;
	CHECK(ipc_fd(&m, 3) == -EBADF && m.bad);
	m.bad = false;
	CHECK(ipc_end(&m));
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	CHECK(write(fd, "hello", 5) == 5);
	close(fd);
	CHECK(read(pfd[0], got, sizeof got) == 5 && !memcmp(got, "hello", 5));

	/* A descriptor nobody claims makes the message bad. */
	{
		int p2[2];
		CHECK(pipe(p2) == 0);
		ipc_out_init(&o, IPC_SPAWN_RESULT);
		ipc_put_fd(&o, p2[1]);
		ipc_put_fd(&o, dup(p2[1]));
		CHECK(chan_send(sv[0], &o) == 0);
		CHECK(ipc_recv_blocking(sv[1], ipc_rbuf, sizeof ipc_rbuf, &m) == 0);
		CHECK(m.nfds == 2);
		fd = ipc_fd(&m, 1);
		CHECK(fd >= 0);
		close(fd);
		CHECK(!ipc_end(&m));
		close_msg_fds(&m);
		close(p2[0]);
	}

	/* An unexpected descriptor in a message that should carry none. */
	{
		int p3[2];
		CHECK(pipe(p3) == 0);
		ipc_out_init(&o, IPC_CONFIG_DONE);
		ipc_put_fd(&o, p3[0]);
		CHECK(chan_send(sv[0], &o) == 0);
		CHECK(ipc_recv_blocking(sv[1], ipc_rbuf, sizeof ipc_rbuf, &m) == 0);
		CHECK(m.type == IPC_CONFIG_DONE);
		CHECK(!ipc_end(&m));
		close_msg_fds(&m);
		close(p3[1]);
	}
	close(pfd[0]);
	close(sv[0]);
	close(sv[1]);
}

/* ---- the byte cursor (lib/bytes.h) ---------------------------------- */

static void test_bytes_reader(void)
{
	/* The reader sees only the first 7 bytes; the rest must stay unread. */
	static const unsigned char mem[16] = {
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0xee, 0xee, 0xee, 0xee, 0xee,
	};
	static const unsigned char be[12] = { 0, 0, 0, 0, 0, 0, 1, 2, 0xde, 0xad, 0xbe, 0xef };
	struct bytes_reader r, s;
	unsigned char got[4] = { 0 };

	r = bytes_reader(mem, 7);
	CHECK(bytes_left(&r) == 7);
	CHECK(bytes_peek(&r) == 0x01);
	CHECK(bytes_u8(&r) == 0x01);
	CHECK(bytes_u16le(&r) == 0x0302);
	CHECK(bytes_left(&r) == 4 && !r.bad);
	CHECK(bytes_u32le(&r) == 0x07060504);
	CHECK(bytes_left(&r) == 0 && !r.bad);
	CHECK(bytes_peek(&r) == -1);
	CHECK(bytes_take(&r, 0) == mem + 7 && !r.bad);  /* zero-length at the end is fine */
	CHECK(bytes_u8(&r) == 0 && r.bad);              /* one past the end is not */
	CHECK(r.off == 7);

	/* A short read reads nothing and leaves the position; failure sticks. */
	r = bytes_reader(mem, 7);
	bytes_skip(&r, 4);
	CHECK(bytes_u32le(&r) == 0 && r.bad && r.off == 4);
	bytes_at(&r, 0);
	CHECK(r.bad && r.off == 4);
	CHECK(bytes_u8(&r) == 0 && bytes_left(&r) == 0 && bytes_peek(&r) == -1);
	CHECK(bytes_take(&r, 0) == NULL);

	r = bytes_reader(mem, 7);
	CHECK(bytes_u64le(&r) == 0 && r.bad);
	r = bytes_reader(mem, 7);
	CHECK(bytes_u64be(&r) == 0 && r.bad);
	r = bytes_reader(be, sizeof be);
	CHECK(bytes_u64be(&r) == 0x0102 && bytes_u32be(&r) == 0xdeadbeef && !r.bad);
	r = bytes_reader(be, sizeof be);
	bytes_at(&r, 4);
	CHECK(bytes_u64le(&r) == 0xefbeadde02010000ull && !r.bad);

	/* Offsets and lengths near SIZE_MAX fail instead of wrapping. */
	r = bytes_reader(mem, 7);
	bytes_skip(&r, 1);
	CHECK(bytes_take(&r, SIZE_MAX) == NULL && r.bad);
	r = bytes_reader(mem, 7);
	bytes_skip(&r, 3);
	bytes_skip(&r, SIZE_MAX - 1);
	CHECK(r.bad && r.off == 3);
	r = bytes_reader(mem, 7);
	bytes_at(&r, SIZE_MAX);
	CHECK(r.bad && r.off == 0);
	r = bytes_reader(mem, 7);
	bytes_at(&r, 7);
	CHECK(!r.bad && bytes_left(&r) == 0);
	bytes_at(&r, 8);
	CHECK(r.bad);

	/* Zero-length and NULL buffers. */
	r = bytes_reader(NULL, 100);
	CHECK(bytes_left(&r) == 0 && bytes_peek(&r) == -1);
	CHECK(bytes_take(&r, 0) == NULL && !r.bad);
	CHECK(bytes_u8(&r) == 0 && r.bad);
	r = bytes_reader(mem, 0);
	CHECK(bytes_left(&r) == 0 && bytes_u16le(&r) == 0 && r.bad);

	/* Sub-readers are bounded by their slice, not the parent. */
	r = bytes_reader(mem, 7);
	bytes_skip(&r, 1);
	s = bytes_sub(&r, 3);
	CHECK(!s.bad && bytes_left(&s) == 3 && r.off == 4);
	CHECK(bytes_u16le(&s) == 0x0302);
	CHECK(bytes_u16le(&s) == 0 && s.bad && !r.bad);
	s = bytes_sub(&r, 4);
	CHECK(s.bad && r.bad && bytes_left(&s) == 0);

	r = bytes_reader(mem, 7);
	bytes_copy(&r, got, 4);
	CHECK(!r.bad && !memcmp(got, mem, 4));
	memset(got, 0, sizeof got);
	bytes_copy(&r, got, 4);
	CHECK(r.bad && got[0] == 0 && got[3] == 0);
}

static void test_bytes_writer(void)
{
	unsigned char mem[24];
	struct bytes_writer w;

	memset(mem, 0xee, sizeof mem);
	w = bytes_writer(mem, 16);
	bytes_put_u8(&w, 0x01);
	bytes_put_u16le(&w, 0x0302);
	bytes_put_u32le(&w, 0x07060504);
	bytes_put_u32be(&w, 0x08090a0b);
	CHECK(!w.bad && w.off == 11 && bytes_room(&w) == 5);
	CHECK(!memcmp(mem, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b", 11));
	bytes_put_u64le(&w, 1);                 /* 8 > 5: nothing is written */
	CHECK(w.bad && w.off == 11 && mem[11] == 0xee && mem[15] == 0xee);
	bytes_put_u8(&w, 0);                    /* sticky */
	CHECK(w.bad && w.off == 11 && mem[11] == 0xee && bytes_room(&w) == 0);

	w = bytes_writer(mem, 16);
	bytes_put_u64be(&w, 0x0102030405060708ull);
	bytes_put_u64le(&w, 0x0102030405060708ull);
	CHECK(!w.bad && w.off == 16 && bytes_room(&w) == 0);
	CHECK(!memcmp(mem, "\x01\x02\x03\x04\x05\x06\x07\x08\x08\x07\x06\x05\x04\x03\x02\x01", 16));
	CHECK(bytes_reserve(&w, 0) == mem + 16 && !w.bad);
	bytes_zero(&w, 1);
	CHECK(w.bad && mem[16] == 0xee);

	w = bytes_writer(mem, 16);
	bytes_zero(&w, 4);
	bytes_put(&w, "abcd", 4);
	CHECK(!w.bad && w.off == 8 && !memcmp(mem, "\0\0\0\0abcd", 8));
	CHECK(bytes_reserve(&w, SIZE_MAX) == NULL && w.bad && w.off == 8);
	w = bytes_writer(mem, 16);
	bytes_put(&w, "", SIZE_MAX - 3);
	CHECK(w.bad && w.off == 0);

	w = bytes_writer(NULL, 16);
	CHECK(bytes_room(&w) == 0 && bytes_reserve(&w, 0) == NULL && !w.bad);
	bytes_put_u8(&w, 1);
	CHECK(w.bad);
	w = bytes_writer(mem, 0);
	bytes_put_u16le(&w, 1);
	CHECK(w.bad && mem[0] == 0);
	CHECK(mem[16] == 0xee && mem[23] == 0xee);
}

/* ---- NTLM and SPNEGO (lib/ntlm.c, lib/spnego.c) ----------------- */

#define CHECK_MEM(a, b, n) check_(memcmp((a), (b), (n)) == 0, "memcmp(" #a ", " #b ")", \
	__FILE__, __LINE__)
#include "test_ntlm.c"
#include "test_xpress.c"
#include "test_ipc_table.c"

/* ---- runner ----------------------------------------------------------- */

#define T(fn) { #fn, fn }
static const struct test { const char *name; void (*fn)(void); } tests[] = {
	T(test_conf_full),
	T(test_conf_defaults),
	T(test_conf_errors),
	T(test_conf_dump_roundtrip),
	T(test_conf_load),
	T(test_conf_set_get),
	T(test_conf_set_value_dump_safe),
	T(test_conf_list),
	T(test_b64_roundtrip),
	T(test_b64_invalid),
	T(test_buf),
	T(test_bytes_reader),
	T(test_bytes_writer),
	T(test_parse_uint),
	T(test_uuid),
	T(test_pwsh_server_argv),
	T(test_str),
	T(test_soap_parse_styles),
	T(test_soap_timeouts),
	T(test_soap_duration),
	T(test_soap_identify),
	T(test_soap_required_headers),
	T(test_soap_hostile_xml),
	T(test_soap_depth),
	T(test_soap_malformed),
	T(test_soap_trailing_nul),
	T(test_soap_encodings),
	T(test_soap_fault),
	T(test_soap_fault_utf8),
	T(test_soap_reply),
	T(test_auth_basic),
	T(test_ipc_roundtrip),
	T(test_ipc_encode_refused),
	T(test_conf_dump_too_large),
	T(test_mon_ntlm_challenge_single_use),
	T(test_ipc_malformed),
	T(test_ipc_fds),
#define X(fn) T(fn),
	NTLM_TESTS
	XPRESS_TESTS
	IPC_TABLE_TESTS
#undef X
};

int main(int argc, char **argv)
{
	int passed = 0, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	soap_init();
	if (ntlm_crypto_init() < 0)
		printf("warning: OpenSSL legacy provider missing; NTLM tests will fail\n");
	for (size_t i = 0; i < ARRAY_SIZE(tests); i++) {
		if (argc > 1 && !strstr(tests[i].name, argv[1]))
			continue;
		cur_failed = false;
		tests[i].fn();
		printf("%s %s\n", cur_failed ? "FAIL" : "ok  ", tests[i].name);
		if (cur_failed)
			failed++;
		else
			passed++;
	}
	xmlCleanupParser();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
