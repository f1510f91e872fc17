/*
 * winrmctl.c - administer winrmd: configuration keys and NTLM passwords
 * (a root command-line tool; never talks to the network).
 *
 * Edits are made to the file text line by line, so comments and layout
 * survive, and the result is checked with the daemon's own parser before it
 * replaces the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "conf.h"
#include "log.h"
#include "ntlm.h"
#include "ntstore.h"
#include "util.h"
#include "wlimits.h"

static const char *conf_path = CONF_DEFAULT_PATH;

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: winrmctl [-f FILE] COMMAND ...\n"
	    "       winrmctl -h | --help       print this help\n"
	    "  config get SECTION KEY          print one effective value\n"
	    "  config set SECTION KEY VALUE    change a key in the file (validated)\n"
	    "  ntlm set-password USER [--stdin] set the NT hash NTLM logins of USER are checked against\n"
	    "  ntlm remove USER                forget USER's NT hash\n"
	    "  ntlm list                       users with an NT hash\n"
	    "  listener list                   listeners of the configuration file\n"
	    "  listener add NAME --transport HTTP|HTTPS [--address A] [--port P]\n"
	    "                 [--cert FILE --key FILE] [--disabled]\n"
	    "  listener remove NAME\n"
	    "  shells list                     shells of the running daemon (user, client, resource, age)\n"
	    "  shells kill SHELLID             end a shell and its processes\n"
	    "  session-config list             session configurations (sessions.d/)\n"
	    "  session-config pwsh             the pwsh the PowerShell configurations run\n"
	    "  session-config show NAME        one configuration, with its effective values\n"
	    "  session-config register NAME [--command CMD] [--allowed-groups G] [--allowed-users U]\n"
	    "                 [--run-as USER] [--configuration-file F] [--resource-uri URI] [--disabled]\n"
	    "  session-config unregister NAME\n"
	    "  session-config enable|disable NAME\n"
	    "SECTION is written as in the file: Service, Service/Auth, Winrs, \"Listener NAME\".\n"
	    "After a change, reload the daemon: systemctl reload winrmd.\n");
}

static int read_file(const char *path, struct buf *b)
{
	FILE *f = fopen(path, "re");
	char chunk[4096];
	size_t n;

	buf_init(b, CONF_MAX_FILE);
	if (!f)
		return errno == ENOENT ? 0 : -errno;    /* a missing file is an empty one */
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (buf_append(b, chunk, n) < 0) {
			fclose(f);
			return -EFBIG;
		}
	fclose(f);
	return 0;
}

static int write_file_atomic(const char *path, const char *text, mode_t mode)
{
	char tmp[PATH_MAX];
	int fd;
	size_t n = strlen(text);

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (write(fd, text, n) != (ssize_t)n || fsync(fd) < 0) {
		int e = -errno;
		close(fd);
		unlink(tmp);
		return e ? e : -EIO;
	}
	close(fd);
	return rename(tmp, path) < 0 ? -errno : 0;
}

/* A --flag VALUE option of "listener add" / "session-config register". */
struct opt_key {
	const char *opt, *key;
};

/*
 * Appends "Key = value" lines for argv's options; --disabled gives
 * "Enabled = false". Returns 0, or the exit code after saying what was wrong.
 */
static int append_options(struct buf *text, int argc, char **argv,
                          const struct opt_key *opts, size_t n_opts)
{
	for (int i = 0; i < argc; i++) {
		bool matched = false;
		if (!strcmp(argv[i], "--disabled")) {
			buf_appends(text, "Enabled = false\n");
			continue;
		}
		for (size_t k = 0; k < n_opts && i + 1 < argc; k++)
			if (!strcmp(argv[i], opts[k].opt)) {
				/* A newline or # would smuggle in another key. */
				if (strchr(argv[i + 1], '\n') || strchr(argv[i + 1], '#')) {
					fprintf(stderr, "winrmctl: values cannot contain newlines or #\n");
					return 1;
				}
				buf_appendf(text, "%s = %s\n", opts[k].key, argv[++i]);
				matched = true;
				break;
			}
		if (!matched) {
			fprintf(stderr, "winrmctl: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	return 0;
}

/*
 * Writes text to path only if the daemon's parser accepts it (it refuses
 * duplicates, overlaps and bad values). Frees text. Returns an exit code.
 */
static int save_checked(const char *path, struct buf *text, mode_t mode, const char *refused)
{
	struct conf c;
	char err[1024];
	int r;

	r = conf_parse((char *)text->data, text->len, path, &c, err, sizeof err);
	if (r < 0) {
		buf_free(text);
		fprintf(stderr, "winrmctl: %s: %s\n", refused, err);
		return 1;
	}
	conf_free(&c);
	r = write_file_atomic(path, buf_str(text), mode);
	buf_free(text);
	if (r < 0) {
		fprintf(stderr, "winrmctl: %s: %s\n", path, strerror(-r));
		return 1;
	}
	return 0;
}

/* "[ Listener   https ]" -> "listener https", for comparing section headers. */
static void norm_section(const char *in, char *out, size_t len)
{
	size_t o = 0;
	bool space = false;

	for (; *in && *in != ']' && o + 1 < len; in++) {
		if (*in == '[')
			continue;
		if (*in == ' ' || *in == '\t') {
			space = o > 0;
			continue;
		}
		if (space && o + 2 < len)
			out[o++] = ' ';
		space = false;
		out[o++] = (char)((*in >= 'A' && *in <= 'Z') ? *in + 32 : *in);
	}
	out[o] = '\0';
}

static int config_set_in(const char *path, const char *section, const char *key, const char *value)
{
	struct buf in, out;
	char want[256], cur[256] = "";
	bool in_sec = false, done = false;
	size_t sec_end = 0;
	struct stat st;
	char *p, *text;
	int r;

	if (strchr(value, '\n') || strchr(value, '#')) {
		fprintf(stderr, "winrmctl: values cannot contain newlines or #\n");
		return 1;
	}
	norm_section(section, want, sizeof want);
	if ((r = read_file(path, &in)) < 0) {
		fprintf(stderr, "winrmctl: %s: %s\n", path, strerror(-r));
		return 1;
	}
	text = buf_str(&in);
	buf_init(&out, 0);
	for (p = text; *p;) {
		char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
		char line[CONF_MAX_LINE + 2], *s;

		snprintf(line, sizeof line, "%.*s", (int)MIN(n, sizeof line - 1), p);
		s = line + strspn(line, " \t");
		if (*s == '[') {
			if (in_sec && !done)
				sec_end = out.len;
			norm_section(s, cur, sizeof cur);
			in_sec = !strcmp(cur, want);
		} else if (in_sec && !done) {
			size_t kl = strlen(key);
			if (!strncasecmp(s, key, kl) && (s[kl] == ' ' || s[kl] == '\t' || s[kl] == '=')) {
				buf_appendf(&out, "%s = %s\n", key, value);
				done = true;
				p += n;
				continue;
			}
		}
		buf_append(&out, p, n);
		if (!nl && n)
			buf_appends(&out, "\n");
		p += n;
	}
	if (in_sec && !done)
		sec_end = out.len;
	if (!done && sec_end) {
		/* Insert at the end of the existing section. */
		struct buf tmp;
		buf_init(&tmp, 0);
		buf_append(&tmp, out.data, sec_end);
		buf_appendf(&tmp, "%s = %s\n", key, value);
		buf_append(&tmp, out.data + sec_end, out.len - sec_end);
		buf_free(&out);
		out = tmp;
		done = true;
	}
	if (!done)
		buf_appendf(&out, "\n[%s]\n%s = %s\n", section, key, value);
	buf_free(&in);
	return save_checked(path, &out, stat(path, &st) == 0 ? (st.st_mode & 0777) : 0644,
	    "not changed");
}

static int cmd_config_set(const char *section, const char *key, const char *value)
{
	return config_set_in(conf_path, section, key, value);
}

static bool name_ok(const char *n)
{
	if (!*n || strlen(n) > 63)
		return false;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || (*n >= '0' && *n <= '9') ||
		    strchr("._-", *n)))
			return false;
	return true;
}

/* ---- listeners --------------------------------------------------------- */

static int cmd_listener(int argc, char **argv)
{
	struct conf c;
	char err[1024];
	int r;

	if (argc >= 1 && !strcmp(argv[0], "list")) {
		r = access(conf_path, F_OK) == 0 ? conf_load(conf_path, &c, err, sizeof err)
		    : conf_load_embedded(&c);
		if (r < 0) {
			fprintf(stderr, "winrmctl: %s\n", err);
			return 1;
		}
		for (size_t i = 0; i < c.n_listeners; i++) {
			const struct conf_listener *l = &c.listeners[i];
			printf("%-12s %-5s %-20s %-5llu %-8s %s\n", l->name, conf_transport_name(l->transport),
			    l->address, l->port, l->enabled ? "enabled" : "disabled",
			    l->cert_file && *l->cert_file ? l->cert_file : "-");
		}
		conf_free(&c);
		return 0;
	}
	if (argc < 2 || !name_ok(argv[1])) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[0], "add")) {
		static const struct opt_key opts[] = {
			{ "--transport", "Transport" }, { "--address", "Address" }, { "--port", "Port" },
			{ "--cert", "CertificateFile" }, { "--key", "KeyFile" },
		};
		struct buf in, text;
		char section[128];

		snprintf(section, sizeof section, "Listener %s", argv[1]);
		if ((r = read_file(conf_path, &in)) < 0) {
			fprintf(stderr, "winrmctl: %s: %s\n", conf_path, strerror(-r));
			return 1;
		}
		buf_init(&text, 0);
		buf_append(&text, in.data, in.len);
		buf_free(&in);
		if (text.len && text.data[text.len - 1] != '\n')
			buf_appends(&text, "\n");
		buf_appendf(&text, "\n[%s]\n", section);
		if ((r = append_options(&text, argc - 2, argv + 2, opts, ARRAY_SIZE(opts)))) {
			buf_free(&text);
			return r;
		}
		return save_checked(conf_path, &text, 0644, "not added");
	}
	if (!strcmp(argv[0], "remove")) {
		struct buf in, out;
		char want[128], cur[128];
		bool skipping = false, found = false;
		char *p;

		snprintf(cur, sizeof cur, "Listener %s", argv[1]);
		norm_section(cur, want, sizeof want);
		if ((r = read_file(conf_path, &in)) < 0) {
			fprintf(stderr, "winrmctl: %s: %s\n", conf_path, strerror(-r));
			return 1;
		}
		buf_init(&out, 0);
		for (p = buf_str(&in); *p;) {
			char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
			const char *t = p + strspn(p, " \t");
			if (*t == '[') {
				char sec[CONF_MAX_LINE + 2];
				snprintf(sec, sizeof sec, "%.*s", (int)n, t);
				norm_section(sec, cur, sizeof cur);
				skipping = !strcmp(cur, want);
				found |= skipping;
			}
			if (!skipping)
				buf_append(&out, p, n);
			p += n;
		}
		buf_free(&in);
		if (!found) {
			buf_free(&out);
			fprintf(stderr, "winrmctl: no listener %s\n", argv[1]);
			return 1;
		}
		return save_checked(conf_path, &out, 0644, "not removed");
	}
	usage(stderr);
	return 2;
}

/* ---- shells of the running daemon (control socket) --------------------- */

static int cmd_shells(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct conf c;
	char err[1024], line[1024];
	FILE *f;
	int fd, r;

	if (argc < 1 || (!strcmp(argv[0], "kill") && argc < 2)) {
		usage(stderr);
		return 2;
	}
	r = access(conf_path, F_OK) == 0 ? conf_load(conf_path, &c, err, sizeof err)
	    : conf_load_embedded(&c);
	if (r < 0) {
		fprintf(stderr, "winrmctl: %s\n", err);
		return 1;
	}
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", c.service.control_socket);
	conf_free(&c);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		fprintf(stderr, "winrmctl: cannot reach the daemon at %s: %s\n", sa.sun_path, strerror(errno));
		return 1;
	}
	if (!strcmp(argv[0], "list"))
		dprintf(fd, "shells\n");
	else if (!strcmp(argv[0], "kill"))
		dprintf(fd, "kill %s\n", argv[1]);
	else {
		close(fd);
		usage(stderr);
		return 2;
	}
	shutdown(fd, SHUT_WR);
	f = fdopen(fd, "r");
	r = 0;
	if (!strcmp(argv[0], "list"))
		printf("%-36s  %-12s %-16s %-8s %-5s %s\n", "SHELLID", "USER", "CLIENT", "AGE(s)", "PROCS",
		    "RESOURCE");
	while (f && fgets(line, sizeof line, f)) {
		char *fld[6], *save = NULL;
		size_t n = 0;
		if (!strncmp(line, "error:", 6)) {
			fprintf(stderr, "winrmctl: %s", line + 7);
			r = 1;
			continue;
		}
		if (!strcmp(line, "ok\n"))
			continue;
		line[strcspn(line, "\n")] = '\0';
		for (char *t = strtok_r(line, "\t", &save); t && n < 6; t = strtok_r(NULL, "\t", &save))
			fld[n++] = t;
		if (n == 6)
			printf("%-36s  %-12s %-16s %-8s %-5s %s\n", fld[0], fld[1], fld[2], fld[4], fld[5], fld[3]);
	}
	if (f)
		fclose(f);
	return r;
}

/* ---- session configurations ------------------------------------------- */

static void session_path(const char *name, char *out, size_t len)
{
	const char *slash = strrchr(conf_path, '/');

	if (slash)
		snprintf(out, len, "%.*s/sessions.d/%s.conf", (int)(slash - conf_path), conf_path, name);
	else
		snprintf(out, len, "sessions.d/%s.conf", name);
}

/* Like listener list: without the file, the embedded default (and whatever
 * sessions.d/ holds beside where the file would be). */
static int load_all(struct conf *c)
{
	char err[1024];
	int r = access(conf_path, F_OK) == 0 ? conf_load(conf_path, c, err, sizeof err)
	    : conf_load_default(conf_path, c, err, sizeof err);

	if (r < 0) {
		fprintf(stderr, "winrmctl: %s\n", err);
		return -1;
	}
	return 0;
}


static int cmd_session(int argc, char **argv)
{
	char path[PATH_MAX + 64];
	struct conf c;

	if (argc >= 1 && !strcmp(argv[0], "list")) {
		if (load_all(&c) < 0)
			return 1;
		for (size_t i = 0; i < c.n_sessions; i++)
			printf("%-28s %-8s %s\n", c.sessions[i].name,
			    c.sessions[i].enabled ? "enabled" : "disabled", c.sessions[i].resource_uri);
		conf_free(&c);
		return 0;
	}
	if (argc == 1 && !strcmp(argv[0], "pwsh")) {
		const char *pwsh = conf_pwsh_path();
		if (!pwsh) {
			fprintf(stderr, "winrmctl: pwsh is not installed where winrmd looks for it\n");
			return 1;
		}
		printf("%s\n", pwsh);
		return 0;
	}
	if (argc < 2 || !name_ok(argv[1])) {
		usage(stderr);
		return 2;
	}
	session_path(argv[1], path, sizeof path);
	if (!strcmp(argv[0], "show")) {
		char *dump, *p;
		const char *hdr;
		if (load_all(&c) < 0)
			return 1;
		if (!conf_session_by_name(&c, argv[1])) {
			fprintf(stderr, "winrmctl: no session configuration %s\n", argv[1]);
			conf_free(&c);
			return 1;
		}
		/* The dump's own section for it: one source of truth for how values print. */
		dump = conf_dump(&c);
		hdr = NULL;
		for (p = dump; (p = strstr(p, "[SessionConfiguration ")); p++)
			if (!strncasecmp(p + 22, argv[1], strlen(argv[1])) && p[22 + strlen(argv[1])] == ']') {
				hdr = p;
				break;
			}
		if (hdr) {
			const char *end = strstr(hdr + 1, "\n\n");
			printf("%.*s\n", (int)(end ? end - hdr : (long)strlen(hdr)), hdr);
		}
		free(dump);
		conf_free(&c);
		return 0;
	}
	if (!strcmp(argv[0], "unregister")) {
		if (unlink(path) < 0) {
			fprintf(stderr, "winrmctl: %s: %s\n", path, strerror(errno));
			return 1;
		}
		return 0;
	}
	if (!strcmp(argv[0], "enable") || !strcmp(argv[0], "disable")) {
		if (access(path, F_OK) < 0) {
			fprintf(stderr, "winrmctl: no file %s\n", path);
			return 1;
		}
		return config_set_in(path, "SessionConfiguration", "Enabled",
		    !strcmp(argv[0], "enable") ? "true" : "false");
	}
	if (!strcmp(argv[0], "register")) {
		static const struct opt_key opts[] = {
			{ "--command", "Command" }, { "--allowed-groups", "AllowedGroups" },
			{ "--allowed-users", "AllowedUsers" }, { "--run-as", "RunAsUser" },
			{ "--configuration-file", "ConfigurationFile" }, { "--resource-uri", "ResourceURI" },
		};
		struct buf text;
		char dir[PATH_MAX + 64], err[1024], *slash;
		int r;

		if (access(path, F_OK) == 0) {
			fprintf(stderr, "winrmctl: %s exists; unregister it first\n", path);
			return 1;
		}
		buf_init(&text, 0);
		buf_appendf(&text, "# Registered with winrmctl session-config register.\n"
		    "[SessionConfiguration]\nName = %s\n", argv[1]);
		if ((r = append_options(&text, argc - 2, argv + 2, opts, ARRAY_SIZE(opts)))) {
			buf_free(&text);
			return r;
		}
		snprintf(dir, sizeof dir, "%s", path);
		if ((slash = strrchr(dir, '/'))) {
			*slash = '\0';
			mkdir(dir, 0755);
		}
		r = write_file_atomic(path, buf_str(&text), 0644);
		buf_free(&text);
		if (r < 0) {
			fprintf(stderr, "winrmctl: %s: %s\n", path, strerror(-r));
			return 1;
		}
		/* Validate everything together; undo if the daemon would refuse it. */
		if (conf_load(conf_path, &c, err, sizeof err) < 0) {
			unlink(path);
			fprintf(stderr, "winrmctl: not registered: %s\n", err);
			return 1;
		}
		conf_free(&c);
		return 0;
	}
	usage(stderr);
	return 2;
}

static int cmd_config_get(const char *section, const char *key)
{
	struct conf c;
	char err[1024];
	char *v;
	int r = access(conf_path, F_OK) == 0 ? conf_load(conf_path, &c, err, sizeof err)
	    : conf_load_embedded(&c);

	if (r < 0) {
		fprintf(stderr, "winrmctl: %s\n", err);
		return 1;
	}
	v = conf_get_value(&c, section, key);
	conf_free(&c);
	if (!v) {
		fprintf(stderr, "winrmctl: no key %s in [%s]\n", key, section);
		return 1;
	}
	printf("%s\n", v);
	free(v);
	return 0;
}

static int read_password(const char *prompt, bool from_stdin, char *buf, size_t len)
{
	struct termios old, noecho;
	bool tty = !from_stdin && isatty(STDIN_FILENO);
	char *ok;

	if (tty) {
		fprintf(stderr, "%s", prompt);
		tcgetattr(STDIN_FILENO, &old);
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
	}
	ok = fgets(buf, (int)len, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (!ok)
		return -EIO;
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

static const char *ntlm_store(void)
{
	static char path[PATH_MAX];
	struct conf c;
	char err[1024];

	if (access(conf_path, F_OK) == 0 && conf_load(conf_path, &c, err, sizeof err) == 0) {
		snprintf(path, sizeof path, "%s", c.auth.ntlm_store);
		conf_free(&c);
	} else {
		conf_load_embedded(&c);
		snprintf(path, sizeof path, "%s", c.auth.ntlm_store);
		conf_free(&c);
	}
	return path;
}

static void print_user(const char *user, void *data)
{
	(void)data;
	printf("%s\n", user);
}

static int cmd_ntlm(int argc, char **argv)
{
	const char *store = ntlm_store();
	unsigned char hash[16];
	char pw1[AUTH_MAX_PASSWORD + 2], pw2[AUTH_MAX_PASSWORD + 2];
	int r;

	if (argc >= 1 && !strcmp(argv[0], "list")) {
		r = ntstore_list(store, print_user, NULL);
		if (r < 0 && r != -ENOENT) {
			fprintf(stderr, "winrmctl: %s: %s\n", store, strerror(-r));
			return 1;
		}
		return 0;
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[0], "remove")) {
		r = ntstore_update(store, argv[1], NULL);
	} else if (!strcmp(argv[0], "set-password")) {
		bool from_stdin = argc > 2 && !strcmp(argv[2], "--stdin");
		if (!getpwnam(argv[1])) {
			fprintf(stderr, "winrmctl: no local user %s\n", argv[1]);
			return 1;
		}
		if (read_password("New NTLM password: ", from_stdin, pw1, sizeof pw1) < 0 ||
		    (!from_stdin && read_password("Again: ", false, pw2, sizeof pw2) < 0)) {
			fprintf(stderr, "winrmctl: no password read\n");
			return 1;
		}
		if (!from_stdin && strcmp(pw1, pw2)) {
			wipe(pw1, sizeof pw1);
			wipe(pw2, sizeof pw2);
			fprintf(stderr, "winrmctl: the passwords differ\n");
			return 1;
		}
		if (!*pw1) {
			fprintf(stderr, "winrmctl: empty passwords are not allowed\n");
			return 1;
		}
		r = ntlm_nt_hash(pw1, hash);
		wipe(pw1, sizeof pw1);
		if (r < 0) {
			wipe(pw2, sizeof pw2);
			fprintf(stderr, "winrmctl: the password is not valid UTF-8 or too long\n");
			return 1;
		}
		wipe(pw2, sizeof pw2);
		r = ntstore_update(store, argv[1], hash);
		wipe(hash, sizeof hash);
	} else {
		usage(stderr);
		return 2;
	}
	if (r < 0) {
		fprintf(stderr, "winrmctl: %s: %s\n", store, strerror(-r));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	/* --help is what people type first; '+' stops at COMMAND, so its own
	 * --options are never taken for ours. */
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int opt;

	log_open("winrmctl", true);
	while ((opt = getopt_long(argc, argv, "+f:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f': conf_path = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[0], "config") && argc == 4 && !strcmp(argv[1], "get"))
		return cmd_config_get(argv[2], argv[3]);
	if (!strcmp(argv[0], "config") && argc == 5 && !strcmp(argv[1], "set"))
		return cmd_config_set(argv[2], argv[3], argv[4]);
	if (!strcmp(argv[0], "session-config"))
		return cmd_session(argc - 1, argv + 1);
	if (!strcmp(argv[0], "listener"))
		return cmd_listener(argc - 1, argv + 1);
	if (!strcmp(argv[0], "shells"))
		return cmd_shells(argc - 1, argv + 1);
	if (!strcmp(argv[0], "ntlm")) {
		if (ntlm_crypto_init() < 0) {
			fprintf(stderr, "winrmctl: OpenSSL's legacy provider (MD4) is not available\n");
			return 1;
		}
		return cmd_ntlm(argc - 1, argv + 1);
	}
	usage(stderr);
	return 2;
}
