/*
 * log.h - logging to the journal (structured) or to stderr.
 *
 * Used by every process.  The one error convention of winrmd: functions
 * return 0 (or a count) on success and a negative errno value on failure;
 * the log_*_errno helpers log and hand that negative value back so a caller
 * can write `return log_warn_errno(r, "...")`.
 */
#ifndef WINRMD_LOG_H
#define WINRMD_LOG_H

#include <stdbool.h>
#include <syslog.h>

void log_open(const char *ident, bool to_stderr);
void log_stderr_only(void);
void log_set_debug(bool on);
bool log_debug_enabled(void);

void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_errno(int prio, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_debug(...) do { if (log_debug_enabled()) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn_errno(e, ...) log_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_err_errno(e, ...) log_errno(LOG_ERR, (e), __VA_ARGS__)

/*
 * One audit record: every authenticated or rejected request, every shell
 * and command event.  Fields that are NULL (or -1 for numbers) are left out.
 * Values that came from the network are sanitised before they are written.
 */
struct log_rec {
	const char *remote;     /* WINRMD_REMOTE_ADDR */
	const char *user;       /* WINRMD_USER */
	const char *scheme;     /* WINRMD_AUTH_SCHEME */
	const char *action;     /* WINRMD_ACTION */
	const char *resource;   /* WINRMD_RESOURCE_URI */
	const char *result;     /* WINRMD_RESULT: ok, denied, fault:<code>, ... */
	const char *shell_id;   /* WINRMD_SHELL_ID */
	const char *command;    /* WINRMD_COMMAND_LINE */
	long long exit_code;    /* WINRMD_EXIT_CODE, -1 = none */
	int status;             /* WINRMD_HTTP_STATUS, 0 = none */
};
#define LOG_REC_INIT { .exit_code = -1 }

void log_record(int prio, const struct log_rec *r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copy s into dst (size n), replacing control characters; returns dst. */
char *log_sanitize(char *dst, size_t n, const char *s);

#endif
