/*
 * mon_user.c - create the unprivileged `winrmd` system user when missing
 * (monitor, enable-remoting).
 *
 * Packages create it through sysusers.d; this covers `make run` and hand
 * installs.  useradd is run directly, never through a shell.
 */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "log.h"
#include "mon.h"

int mon_ensure_system_user(const char *name)
{
	char *const argv[] = {
		"useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/usr/sbin/nologin", "--user-group", (char *)name, NULL,
	};
	int status;
	pid_t p;

	if (getpwnam(name))
		return 0;
	log_notice("creating system user %s", name);
	p = fork();
	if (p < 0)
		return -errno;
	if (p == 0) {
		execv("/usr/sbin/useradd", argv);
		_exit(127);
	}
	while (waitpid(p, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !getpwnam(name))
		return log_err_errno(EIO, "useradd %s failed", name);
	return 0;
}
