/*
 * log.c - journal and stderr logging (all processes).
 *
 * When journald is reachable, records go there with structured fields so an
 * admin can `journalctl WINRMD_USER=alice`; otherwise (containers, `-d`) they
 * go to stderr as one line with key=value pairs.  Anything that came from the
 * network is stripped of control characters first: a user name must not be
 * able to forge a log line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "log.h"

static const char *log_ident = "winrmd";
static bool log_stderr = true;
static bool log_journal;
static bool log_dbg;

void log_open(const char *ident, bool to_stderr)
{
	log_ident = ident;
	log_stderr = to_stderr;
	log_journal = access("/run/systemd/journal/socket", W_OK) == 0;
	if (!log_journal)
		log_stderr = true;
}

/* For a child that closed descriptors it did not know: sd-journal's cached socket may be gone. */
void log_stderr_only(void)
{
	log_journal = false;
	log_stderr = true;
}

void log_set_debug(bool on) { log_dbg = on; }
bool log_debug_enabled(void) { return log_dbg; }

char *log_sanitize(char *dst, size_t n, const char *s)
{
	size_t i = 0;

	if (n == 0)
		return dst;
	for (; s && *s && i + 1 < n; s++)
		dst[i++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	dst[i] = '\0';
	return dst;
}

static const char *prio_name(int prio)
{
	static const char *const names[] = {
		"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
	};
	return names[prio & 7];
}

/* Fields of a record: name and (already sanitised) value. */
struct field { const char *name; char value[512]; };

static void emit(int prio, const struct field *f, size_t nf, const char *msg)
{
	if (log_journal) {
		struct iovec iov[16];
		char buf[16][600], *m;
		size_t n = 0;

		/* Not xasprintf: util.c's allocators log through here when they fail. */
		if (asprintf(&m, "MESSAGE=%s", msg) < 0)
			return;

		iov[n].iov_base = m; iov[n].iov_len = strlen(m); n++;
		snprintf(buf[n], sizeof buf[n], "PRIORITY=%d", prio);
		iov[n].iov_base = buf[n]; iov[n].iov_len = strlen(buf[n]); n++;
		snprintf(buf[n], sizeof buf[n], "SYSLOG_IDENTIFIER=%s", log_ident);
		iov[n].iov_base = buf[n]; iov[n].iov_len = strlen(buf[n]); n++;
		for (size_t i = 0; i < nf && n < 16; i++, n++) {
			int k = snprintf(buf[n], sizeof buf[n], "%s=%.*s", f[i].name, 500, f[i].value);
			iov[n].iov_base = buf[n];
			iov[n].iov_len = k < 0 ? 0 : (size_t)k < sizeof buf[n] ? (size_t)k : sizeof buf[n] - 1;
		}
		/* A socket file with no journald behind it (a stopped container's) drops records. */
		if (sd_journal_sendv(iov, (int)n) < 0) {
			log_journal = false;
			log_stderr = true;
		}
		free(m);
	}
	if (log_stderr) {
		char line[4096];
		size_t off = (size_t)snprintf(line, sizeof line, "%s[%d]: %s: %s",
		    log_ident, (int)getpid(), prio_name(prio), msg);
		for (size_t i = 0; i < nf && off < sizeof line; i++)
			off += (size_t)snprintf(line + off, sizeof line - off, " %s=\"%s\"",
			    f[i].name, f[i].value);
		if (off >= sizeof line)
			off = sizeof line - 1;
		line[off] = '\0';
		fprintf(stderr, "%s\n", line);
	}
}

static void vlog(int prio, const struct field *f, size_t nf, const char *fmt, va_list ap)
{
	char msg[2048];

	if (prio == LOG_DEBUG && !log_dbg)
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	/*
	 * Messages quote names the network chose (NTLM domain and workstation,
	 * principals, certificate subjects): one newline would forge a record.
	 * Scrubbing the whole message here covers every call site at once.
	 */
	log_sanitize(msg, sizeof msg, msg);
	emit(prio, f, nf, msg);
}

void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(prio, NULL, 0, fmt, ap);
	va_end(ap);
}

int log_errno(int prio, int err, const char *fmt, ...)
{
	char msg[1800];
	va_list ap;

	if (err < 0)
		err = -err;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_msg(prio, "%s: %s", msg, strerror(err));
	return -err;
}

_Noreturn void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, NULL, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

void log_record(int prio, const struct log_rec *r, const char *fmt, ...)
{
	struct field f[10];
	size_t n = 0;
	va_list ap;

#define ADD(fname, v) do { if (v) { f[n].name = fname; \
	log_sanitize(f[n].value, sizeof f[n].value, v); n++; } } while (0)
	ADD("WINRMD_REMOTE_ADDR", r->remote);
	ADD("WINRMD_USER", r->user);
	ADD("WINRMD_AUTH_SCHEME", r->scheme);
	ADD("WINRMD_ACTION", r->action);
	ADD("WINRMD_RESOURCE_URI", r->resource);
	ADD("WINRMD_RESULT", r->result);
	ADD("WINRMD_SHELL_ID", r->shell_id);
	ADD("WINRMD_COMMAND_LINE", r->command);
#undef ADD
	if (r->exit_code != -1) {
		f[n].name = "WINRMD_EXIT_CODE";
		snprintf(f[n].value, sizeof f[n].value, "%lld", r->exit_code);
		n++;
	}
	if (r->status) {
		f[n].name = "WINRMD_HTTP_STATUS";
		snprintf(f[n].value, sizeof f[n].value, "%d", r->status);
		n++;
	}
	va_start(ap, fmt);
	vlog(prio, f, n, fmt, ap);
	va_end(ap);
}
