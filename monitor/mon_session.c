/*
 * mon_session.c - PAM sessions and the processes started in them: the
 * SESSION_OPEN, SPAWN, SIGNAL and SESSION_CLOSE requests (monitor, root).
 *
 * A process is only ever started for a session opened by the same login's
 * user, and everything about a session configuration's process comes from
 * the monitor's configuration, never from the worker.  A closing session
 * lives on until its last process has been reaped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "mon_int.h"
#include "util.h"
#include "winrmd.h"

static struct mon_session *session_find(uint64_t id)
{
	for (size_t i = 0; i < M.n_sessions; i++)
		if (M.sessions[i]->id == id)
			return M.sessions[i];
	return NULL;
}

void mon_session_destroy(struct mon_session *s)
{
	for (size_t i = 0; i < M.n_sessions; i++)
		if (M.sessions[i] == s) {
			M.sessions[i] = M.sessions[--M.n_sessions];
			break;
		}
	mon_pam_close_session(s);
	log_debug("session %016llx of %s closed", (unsigned long long)s->id, s->user);
	free(s->user);
	free(s->home);
	free(s->shell);
	free(s->shell_id);
	free(s->remote);
	free(s->command);
	free(s->config_file);
	free(s->resource);
	free(s);
}

void mon_session_signal_all(struct mon_session *s, int sig)
{
	for (size_t i = 0; i < M.n_children; i++)
		if (M.children[i].s == s)
			kill(-M.children[i].pid, sig);
}

void mon_session_close(struct mon_session *s)
{
	s->closing = true;
	if (s->nchildren == 0) {
		mon_session_destroy(s);
		return;
	}
	mon_session_signal_all(s, SIGTERM);
	/* Escalation to SIGKILL happens in the reaper tick (mon.c). */
}

static void child_add(pid_t pid, struct mon_session *s)
{
	if (M.n_children == M.cap_children) {
		M.cap_children = M.cap_children ? M.cap_children * 2 : 64;
		M.children = xrealloc(M.children, M.cap_children * sizeof *M.children);
	}
	M.children[M.n_children++] = (struct mon_child){ pid, s };
}

/*
 * The processes of a WinRS shell, as MaxProcessesPerShell counts them: its
 * running commands and everything they started that stayed in their
 * sessions (each command is a session leader, so the session id is its
 * pid). Windows counts the shell's job object; without a cgroup per shell
 * this is the closest Linux view, and it is taken only when a command is
 * about to start beside others.
 */
static unsigned session_processes(const struct mon_session *s)
{
	pid_t *leaders;
	size_t n = 0;
	unsigned count = 0;
	DIR *d;
	struct dirent *e;

	if (s->nchildren == 0)
		return 0;
	leaders = xcalloc(s->nchildren, sizeof *leaders);
	for (size_t i = 0; i < M.n_children && n < s->nchildren; i++)
		if (M.children[i].s == s)
			leaders[n++] = M.children[i].pid;
	d = opendir("/proc");
	while (d && (e = readdir(d))) {
		char path[64], stat[512], *p;
		ssize_t len;
		int fd, sid;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%.20s/stat", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, stat, sizeof stat - 1);
		close(fd);
		if (len <= 0)
			continue;
		stat[len] = '\0';
		/* The command name may hold anything; the fields resume after the last ')'. */
		p = strrchr(stat, ')');
		if (!p || sscanf(p + 1, " %*c %*d %*d %d", &sid) != 1)
			continue;
		for (size_t i = 0; i < n; i++)
			if (sid == leaders[i]) {
				count++;
				break;
			}
	}
	if (d)
		closedir(d);
	free(leaders);
	return MAX(count, (unsigned)n);
}

void mon_h_session_open(struct ipc_msg *m)
{
	uint32_t req = ipc_u32(m);
	uint64_t login = ipc_u64(m);
	const char *shell_id = ipc_str(m);
	const char *resource = ipc_str(m);
	const char *remote = ipc_str(m);
	struct mon_session *s;
	struct mon_login *l;
	struct passwd *pw;
	struct ipc_out o;
	int r = 0;

	const struct conf_session *sc = NULL;
	const char *run_as;

	if (!ipc_end(m))
		return;
	l = mon_login_find(login);
	if (!l) {
		r = -ENOENT;
		goto out;
	}
	/* Re-check against the current configuration: it may have changed since the login. */
	if (!str_ieq(resource, "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd")) {
		sc = conf_session_by_uri(&M.conf, resource);
		if (!sc || !sc->enabled) {
			r = -ENOENT;
			goto out;
		}
		if (!mon_authorized_lists(sc->allowed_users, sc->allowed_groups, l->user, l->uid, l->gid)) {
			log_notice("%s may not use session configuration %s", l->user, sc->name);
			r = -EACCES;
			goto out;
		}
	} else if (!mon_authorized(&M.conf, l->user, l->uid, l->gid)) {
		r = -EACCES;
		goto out;
	}
	run_as = sc && *sc->run_as_user ? sc->run_as_user : l->user;
	if (M.n_sessions >= MON_MAX_SESSIONS || !(pw = getpwnam(run_as)) ||
	    (run_as == l->user && pw->pw_uid != l->uid)) {
		r = -EAGAIN;
		goto out;
	}
	s = xcalloc(1, sizeof *s);
	s->id = mon_new_id();
	s->owner_uid = l->uid;
	s->user = xstrdup(run_as);
	s->uid = pw->pw_uid;
	if (sc) {
		s->command = xstrdup(sc->command);
		if (*sc->configuration_file)
			s->config_file = xstrdup(sc->configuration_file);
	}
	s->gid = pw->pw_gid;
	s->home = xstrdup(pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
	s->shell = xstrdup(pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh");
	s->shell_id = xstrdup(mon_str_clean(shell_id, 64) ? shell_id : "?");
	s->remote = xstrdup(mon_str_clean(remote, 64) ? remote : "?");
	s->resource = xstrdup(mon_str_clean(resource, 512) ? resource : "?");
	s->started_ms = now_ms();
	r = mon_pam_open_session(M.conf.service.pam_service, s);
	if (r < 0) {
		free(s->user); free(s->home); free(s->shell); free(s->shell_id); free(s->remote);
		free(s->command); free(s->config_file); free(s->resource);
		free(s);
		goto out;
	}
	M.sessions = xrealloc(M.sessions, (M.n_sessions + 1) * sizeof *M.sessions);
	M.sessions[M.n_sessions++] = s;
out:
	ipc_out_init(&o, IPC_SESSION_RESULT);
	ipc_put_u32(&o, req);
	ipc_put_i32(&o, r);
	ipc_put_u64(&o, r == 0 ? s->id : 0);
	mon_send_worker(&o);
}

/* A configured command such as "pwsh -s" names its program relative to the usual dirs. */
static int mon_resolve_program(char **prog)
{
	static const char *const dirs[] = {
		"/usr/local/bin", "/usr/bin", "/bin", "/opt/microsoft/powershell/7",
	};

	if ((*prog)[0] == '/')
		return access(*prog, X_OK) == 0 ? 0 : -ENOENT;
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		char *p = xasprintf("%s/%s", dirs[i], *prog);
		if (access(p, X_OK) == 0) {
			*prog = p;      /* freed by the caller */
			return 0;
		}
		free(p);
	}
	return -ENOENT;
}

/* Microsoft.PowerShell for http://schemas.microsoft.com/powershell/Microsoft.PowerShell. */
static const char *session_config_name(const struct mon_session *s)
{
	const char *slash = s->resource ? strrchr(s->resource, '/') : NULL;

	return slash ? slash + 1 : "";
}

/* WINRMD_CONNECTION_STRING=scheme://host/wsman…, printable ASCII, bounded. */
static bool spawn_url_ok(const char *e)
{
	size_t n = strlen(IPC_SPAWN_URL_ENV);

	if (strncmp(e, IPC_SPAWN_URL_ENV, n) != 0 || strlen(e + n) >= HTTP_URL_MAX ||
	    (strncmp(e + n, "http://", 7) != 0 && strncmp(e + n, "https://", 8) != 0))
		return false;
	for (e += n; *e; e++)
		if (*e <= 0x20 || *e >= 0x7f)
			return false;
	return true;
}

void mon_h_spawn(struct ipc_msg *m)
{
	char *argv[SPAWN_MAX_ARGS + 1], *env[SPAWN_MAX_ENV + 1];
	uint32_t req = ipc_u32(m);
	uint64_t login = ipc_u64(m), session = ipc_u64(m);
	uint32_t flags = ipc_u32(m);
	const char *cwd = ipc_str(m);
	uint32_t argc = ipc_u32(m), envc;
	struct mon_session *s;
	struct mon_login *l;
	struct ipc_out o;
	int fds[3] = { -1, -1, -1 }, r;
	pid_t pid = 0;

	if (argc == 0 || argc > SPAWN_MAX_ARGS) {
		m->bad = true;
		return;
	}
	for (uint32_t i = 0; i < argc; i++)
		argv[i] = (char *)ipc_str(m);
	argv[argc] = NULL;
	envc = ipc_u32(m);
	if (envc > SPAWN_MAX_ENV) {
		m->bad = true;
		return;
	}
	for (uint32_t i = 0; i < envc; i++)
		env[i] = (char *)ipc_str(m);
	env[envc] = NULL;
	if (!ipc_end(m))
		return;

	l = mon_login_find(login);
	s = session_find(session);
	if (!l || !s || s->closing) {
		r = -ENOENT;
	} else if (l->uid != s->owner_uid) {
		/* A login may only start processes in sessions it opened itself. */
		log_warn("worker asked to spawn in a session of %s for a login of %s", s->user, l->user);
		r = -EPERM;
	} else if ((flags & IPC_SPAWN_RUNSPACE) && !s->command) {
		r = -EINVAL;
	} else if (!(flags & IPC_SPAWN_RUNSPACE) && s->command) {
		/* A session configuration runs its own program and nothing else. */
		r = -EPERM;
	} else if (!(flags & IPC_SPAWN_RUNSPACE) &&
	    session_processes(s) >= M.conf.winrs.max_procs_per_shell) {
		r = -EUSERS;
	} else if (flags & IPC_SPAWN_RUNSPACE) {
		/*
		 * Everything about a session configuration's process comes from the
		 * configuration the monitor holds, never from the worker: with
		 * RunAsUser it runs as another account than the one that logged in.
		 */
		char *rargv[SPAWN_MAX_ARGS + 1], *own_env[5] = { "POWERSHELL_TELEMETRY_OPTOUT=1" };
		char *words = xstrdup(s->command), *save = NULL;
		size_t ra = 0;
		for (char *w = strtok_r(words, " \t", &save); w && ra < SPAWN_MAX_ARGS - 2;
		     w = strtok_r(NULL, " \t", &save))
			rargv[ra++] = w;
		if (s->config_file) {
			rargv[ra++] = "-ConfigurationFile";
			rargv[ra++] = s->config_file;
		} else if (mon_pwsh_server_argv(rargv, ra)) {
			/* $PSSenderInfo as wsmprovhost fills it (mon_spawn.c). */
			rargv[ra++] = "-Command";
			rargv[ra++] = (char *)mon_pwsh_init_script;
			own_env[1] = xasprintf("WINRMD_CONNECTED_USER=%s", l->user);
			own_env[2] = xasprintf("WINRMD_CONFIGURATION_NAME=%s", session_config_name(s));
			/* Only the worker saw the URL; it is data to the script, checked here. */
			if (envc == 1 && spawn_url_ok(env[0]))
				own_env[3] = env[0];
		}
		rargv[ra] = NULL;
		r = ra ? mon_resolve_program(&rargv[0]) : -EINVAL;
		if (r == 0)
			r = mon_spawn(s, "", rargv, NULL, own_env, 0, &pid, fds);
		free(own_env[1]);
		free(own_env[2]);
		if (r == 0)
			child_add(pid, s);
		free(rargv[0] != words && ra ? rargv[0] : NULL);
		free(words);
	} else {
		unsigned long long mem = (flags & IPC_SPAWN_MEMLIMIT) ?
		    M.conf.winrs.max_memory_mb * 1024ULL * 1024ULL : 0;
		r = mon_spawn(s, cwd, argv, env, NULL, mem, &pid, fds);
		if (r == 0)
			child_add(pid, s);
	}
	ipc_out_init(&o, IPC_SPAWN_RESULT);
	ipc_put_u32(&o, req);
	ipc_put_i32(&o, r);
	ipc_put_u32(&o, (uint32_t)pid);
	if (r == 0)
		for (int i = 0; i < 3; i++)
			ipc_put_fd(&o, fds[i]);
	mon_send_worker(&o);
}

void mon_h_signal(struct ipc_msg *m)
{
	uint64_t session = ipc_u64(m);
	pid_t pid = (pid_t)ipc_u32(m);
	int sig = (int)ipc_u32(m);

	if (!ipc_end(m))
		return;
	if (sig != SIGINT && sig != SIGQUIT && sig != SIGTERM && sig != SIGKILL && sig != SIGHUP)
		return;
	for (size_t i = 0; i < M.n_children; i++)
		if (M.children[i].pid == pid && M.children[i].s->id == session) {
			kill(-pid, sig);
			return;
		}
}

void mon_h_session_close(struct ipc_msg *m)
{
	uint64_t session = ipc_u64(m);
	struct mon_session *s;

	if (!ipc_end(m))
		return;
	s = session_find(session);
	if (s && !s->closing)
		mon_session_close(s);
}

void mon_child_exited(pid_t pid, int status)
{
	for (size_t i = 0; i < M.n_children; i++) {
		struct mon_session *s;
		struct ipc_out o;

		if (M.children[i].pid != pid)
			continue;
		s = M.children[i].s;
		M.children[i] = M.children[--M.n_children];
		ipc_out_init(&o, IPC_CHILD_EXIT);
		ipc_put_u64(&o, s->id);
		ipc_put_u32(&o, (uint32_t)pid);
		ipc_put_i32(&o, status);
		mon_send_worker(&o);
		if (--s->nchildren == 0 && s->closing)
			mon_session_destroy(s);
		return;
	}
}
