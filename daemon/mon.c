/*
 * mon.c - the root monitor: configuration, sockets, worker supervision and
 * the privileged IPC table (monitor).
 *
 * The worker asks; the monitor checks and answers.  Every request names a
 * login the monitor itself verified (by id), and a process is only ever
 * started for a session that belongs to that login's user.  A malformed
 * request is fatal to the channel: the worker is killed and restarted.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "ipc.h"
#include "log.h"
#include "mon.h"
#include "mon_int.h"
#include "gss.h"
#include "ntlm.h"
#include "ntstore.h"
#include "tls.h"
#include "util.h"
#include "winrmd.h"

static void worker_start(void);

/* ---- sessions, children ---------------------------------------------- */

static struct mon_session *session_find(uint64_t id)
{
	for (size_t i = 0; i < M.n_sessions; i++)
		if (M.sessions[i]->id == id)
			return M.sessions[i];
	return NULL;
}

static void session_destroy(struct mon_session *s)
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

static void session_signal_all(struct mon_session *s, int sig)
{
	for (size_t i = 0; i < M.n_children; i++)
		if (M.children[i].s == s)
			kill(-M.children[i].pid, sig);
}

static void session_close(struct mon_session *s)
{
	s->closing = true;
	if (s->nchildren == 0) {
		session_destroy(s);
		return;
	}
	session_signal_all(s, SIGTERM);
	/* Escalation to SIGKILL happens in the reaper tick below. */
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

/* ---- the IPC table ---------------------------------------------------- */

static void h_session_open(struct ipc_msg *m)
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
		goto reply;
	}
	/* Re-check against the current configuration: it may have changed since the login. */
	if (!str_ieq(resource, "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd")) {
		sc = conf_session_by_uri(&M.conf, resource);
		if (!sc || !sc->enabled) {
			r = -ENOENT;
			goto reply;
		}
		if (!mon_authorized_lists(sc->allowed_users, sc->allowed_groups, l->user, l->uid, l->gid)) {
			log_notice("%s may not use session configuration %s", l->user, sc->name);
			r = -EACCES;
			goto reply;
		}
	} else if (!mon_authorized(&M.conf, l->user, l->uid, l->gid)) {
		r = -EACCES;
		goto reply;
	}
	run_as = sc && *sc->run_as_user ? sc->run_as_user : l->user;
	if (M.n_sessions >= MON_MAX_SESSIONS || !(pw = getpwnam(run_as)) ||
	    (run_as == l->user && pw->pw_uid != l->uid)) {
		r = -EAGAIN;
		goto reply;
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
		goto reply;
	}
	M.sessions = xrealloc(M.sessions, (M.n_sessions + 1) * sizeof *M.sessions);
	M.sessions[M.n_sessions++] = s;
reply:
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

static void h_spawn(struct ipc_msg *m)
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

static void h_signal(struct ipc_msg *m)
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

static void h_session_close(struct ipc_msg *m)
{
	uint64_t session = ipc_u64(m);
	struct mon_session *s;

	if (!ipc_end(m))
		return;
	s = session_find(session);
	if (s && !s->closing)
		session_close(s);
}

static void h_worker_ready(struct ipc_msg *m)
{
	if (!ipc_end(m))
		return;
	if (M.configs_unacked)          /* the table only accepts it while one is due */
		M.configs_unacked--;
	M.worker_served = true;
	if (!M.ready_sent || M.reloading) {
		sd_notifyf(0, "READY=1\nSTATUS=Serving %zu listener(s)", M.n_listeners);
		M.ready_sent = true;
		M.reloading = false;
	}
	log_info("worker %d ready", (int)M.worker_pid);
}

/*
 * What the worker may ask, and when.  Logins and sessions need a worker that
 * has listeners, so they wait for its first WORKER_READY; WORKER_READY itself
 * only answers a configuration.
 */
#define LIVE (MON_W_SERVING | MON_W_RELOADING)
const struct ipc_handler mon_ipc_handlers[] = {
	{ IPC_AUTH_PASSWORD,  "AUTH_PASSWORD",  IPC_FROM_WORKER, LIVE, mon_h_auth_password },
	{ IPC_NTLM_CHALLENGE, "NTLM_CHALLENGE", IPC_FROM_WORKER, LIVE, mon_h_ntlm_challenge },
	{ IPC_NTLM_VERIFY,    "NTLM_VERIFY",    IPC_FROM_WORKER, LIVE, mon_h_ntlm_verify },
	{ IPC_GSS_ACCEPT,     "GSS_ACCEPT",     IPC_FROM_WORKER, LIVE, mon_h_gss_accept },
	{ IPC_CERT_LOGIN,     "CERT_LOGIN",     IPC_FROM_WORKER, LIVE, mon_h_cert_login },
	{ IPC_LOGIN_RELEASE,  "LOGIN_RELEASE",  IPC_FROM_WORKER, LIVE, mon_h_login_release },
	{ IPC_SESSION_OPEN,   "SESSION_OPEN",   IPC_FROM_WORKER, LIVE, h_session_open },
	{ IPC_SPAWN,          "SPAWN",          IPC_FROM_WORKER, LIVE, h_spawn },
	{ IPC_SIGNAL,         "SIGNAL",         IPC_FROM_WORKER, LIVE, h_signal },
	{ IPC_SESSION_CLOSE,  "SESSION_CLOSE",  IPC_FROM_WORKER, LIVE, h_session_close },
	{ IPC_WORKER_READY,   "WORKER_READY",   IPC_FROM_WORKER, MON_W_STARTING | MON_W_RELOADING,
	  h_worker_ready },
};
#undef LIVE
const size_t mon_ipc_n_handlers = sizeof mon_ipc_handlers / sizeof mon_ipc_handlers[0];

unsigned mon_worker_state(unsigned configs_unacked, bool served)
{
	if (configs_unacked)
		return served ? MON_W_RELOADING : MON_W_STARTING;
	return served ? MON_W_SERVING : 0;
}

static void on_worker_msg(struct ipc_chan *ch, struct ipc_msg *m, void *userdata)
{
	(void)ch; (void)userdata;

	ipc_dispatch(mon_ipc_handlers, mon_ipc_n_handlers,
	    mon_worker_state(M.configs_unacked, M.worker_served), m);
}

/* ---- worker lifecycle ------------------------------------------------- */

static void worker_forget(void)
{
	ipc_chan_free(M.worker);
	M.worker = NULL;
	M.configs_unacked = 0;
	M.worker_served = false;
	mon_pending_flush();
	mon_auth_jobs_cancel();
	mon_ntlm_challenges_forget();       /* the handshakes died with the worker */
	while (M.n_logins)
		mon_login_free(M.logins[--M.n_logins]);
	/* Shells die with the worker that held their pipes. */
	for (size_t i = M.n_sessions; i-- > 0;)
		session_close(M.sessions[i]);
}

static void on_worker_close(struct ipc_chan *ch, void *userdata)
{
	(void)ch; (void)userdata;

	if (M.worker_pid > 0 && !M.stopping) {
		log_err("worker %d: IPC channel closed; stopping it", (int)M.worker_pid);
		kill(M.worker_pid, SIGKILL);
	}
}

static int restart_fire(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s; (void)usec; (void)userdata;
	M.restart_timer = sd_event_source_unref(M.restart_timer);
	if (!M.stopping)
		worker_start();
	return 0;
}

static void worker_exited(int status)
{
	uint64_t ran = now_ms() - M.worker_started_ms, delay = 0;

	if (M.stopping)
		log_info("worker %d stopped", (int)M.worker_pid);
	else if (WIFSIGNALED(status))
		log_err("worker %d killed by signal %d", (int)M.worker_pid, WTERMSIG(status));
	else
		log_err("worker %d exited with status %d", (int)M.worker_pid, WEXITSTATUS(status));
	M.worker_pid = 0;
	worker_forget();
	if (M.stopping)
		return;
	if (ran < MON_WORKER_RESTART_MIN_MS)
		delay = MON_WORKER_RESTART_MIN_MS - ran;
	log_notice("restarting worker in %llu ms", (unsigned long long)delay);
	if (sd_event_add_time_relative(M.ev, &M.restart_timer, CLOCK_MONOTONIC, delay * 1000 + 1, 0,
	    restart_fire, NULL) < 0) {
		log_err("cannot arm the restart timer; restarting the worker now");
		worker_start();
		return;
	}
	sd_event_source_set_description(M.restart_timer, "worker-restart");
}

static void send_config(void)
{
	struct ipc_out o;
	char *dump = conf_dump(&M.conf), err[512];

	M.configs_unacked++;
	ipc_out_init(&o, IPC_CONFIG);
	ipc_put_str(&o, dump);
	ipc_put_u32(&o, access(M.conf.auth.keytab, R_OK) == 0 ? IPC_FACT_KEYTAB : 0);
	free(dump);
	mon_send_worker(&o);
	for (size_t i = 0, li = 0; i < M.conf.n_listeners; i++) {
		struct conf_listener *cl = &M.conf.listeners[i];
		char *cert = NULL, *key = NULL;
		size_t cl_len = 0, kl = 0;

		if (!cl->enabled)
			continue;
		if (cl->transport == CONF_HTTPS &&
		    (tls_read_pem(cl->cert_file, 0, &cert, &cl_len, err, sizeof err) < 0 ||
		     tls_read_pem(cl->key_file, 1, &key, &kl, err, sizeof err) < 0)) {
			log_err("listener %s disabled: %s", cl->name, err);
			free(cert);
			li++;
			continue;
		}
		ipc_out_init(&o, IPC_LISTENER);
		o.secret = true;
		ipc_put_str(&o, cl->name);
		ipc_put_u32(&o, (uint32_t)cl->transport);
		ipc_put_str(&o, cert ? cert : "");
		ipc_put_bytes(&o, key ? key : "", kl);
		{
			/* Client certificates are requested only where they can log in. */
			char *trust = NULL;
			size_t tl = 0;
			if (cl->transport == CONF_HTTPS && M.conf.auth.certificate &&
			    tls_read_pem(M.conf.auth.ca_file, 0, &trust, &tl, err, sizeof err) < 0)
				log_err("client certificates disabled: %s", err);
			ipc_put_str(&o, trust ? trust : "");
			free(trust);
		}
		ipc_put_fd(&o, fcntl(M.listeners[li].fd, F_DUPFD_CLOEXEC, 3));
		mon_send_worker(&o);
		free(cert);
		freezero(key, kl);
		li++;
	}
	ipc_out_init(&o, IPC_CONFIG_DONE);
	mon_send_worker(&o);
}

static void drop_to_worker_user(void)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (getuid() != 0)
		return;         /* a non-root test run: nothing to drop */
	if (setgroups(0, NULL) < 0 ||
	    setresgid(M.worker_gid, M.worker_gid, M.worker_gid) < 0 ||
	    setresuid(M.worker_uid, M.worker_uid, M.worker_uid) < 0)
		_exit(70);
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != M.worker_uid || eu != M.worker_uid || su != M.worker_uid ||
	    rg != M.worker_gid || eg != M.worker_gid || sg != M.worker_gid)
		_exit(70);
	if (M.worker_uid != 0 && (setuid(0) != -1 || seteuid(0) != -1))
		_exit(70);
}

static void worker_start(void)
{
	int sv[2];
	pid_t p;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		fatal("socketpair: %m");
	p = fork();
	if (p < 0)
		fatal("fork: %m");
	if (p == 0) {
		char *argv[] = { "winrmd-net", M.debug ? "-d" : NULL, NULL };
		char *envp[] = { "LANG=C.UTF-8", NULL };
		sigset_t none;

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Move both out of the way first: either may already sit on 3 or 4. */
		int ipc = fcntl(sv[1], F_DUPFD, 10), exe = fcntl(M.exe_fd, F_DUPFD, 10);
		if (ipc < 0 || exe < 0 || dup2(ipc, WINRMD_WORKER_IPC_FD) < 0 ||
		    dup2(exe, WINRMD_WORKER_IPC_FD + 1) < 0)
			_exit(70);
		close_range(WINRMD_WORKER_IPC_FD + 2, ~0U, 0);
		drop_to_worker_user();
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		syscall(SYS_execveat, WINRMD_WORKER_IPC_FD + 1, "", argv, envp, AT_EMPTY_PATH);
		log_err("cannot execute the worker: %m");
		_exit(71);
	}
	close(sv[1]);
	M.worker_pid = p;
	M.worker_started_ms = now_ms();
	if (ipc_chan_new(M.ev, sv[0], on_worker_msg, on_worker_close, NULL, &M.worker) < 0)
		fatal("ipc channel: %m");
	log_info("started worker %d", (int)p);
	send_config();
}

/* ---- control socket (winrmctl shells) -------------------------------- */

/*
 * A root-only Unix socket: one text command per connection, answered and
 * closed.  The monitor lists and ends shells from its own session table, so
 * an admin can act even when the worker misbehaves.
 */
static int control_fd = -1;
static sd_event_source *control_src;

static void control_answer(int fd, const char *cmd)
{
	FILE *f = fdopen(dup(fd), "w");
	uint64_t now = now_ms();

	if (!f)
		return;
	if (!strcmp(cmd, "shells")) {
		for (size_t i = 0; i < M.n_sessions; i++) {
			struct mon_session *s = M.sessions[i];
			if (s->closing)
				continue;
			fprintf(f, "%s\t%s\t%s\t%s\t%llu\t%u\n", s->shell_id, s->user, s->remote,
			    s->resource, (unsigned long long)((now - s->started_ms) / 1000), s->nchildren);
		}
	} else if (!strncmp(cmd, "kill ", 5)) {
		struct mon_session *hit = NULL;
		for (size_t i = 0; i < M.n_sessions; i++)
			if (str_ieq(M.sessions[i]->shell_id, cmd + 5) && !M.sessions[i]->closing)
				hit = M.sessions[i];
		if (hit) {
			struct ipc_out o;
			log_notice("shell %s of %s ended by an administrator", hit->shell_id, hit->user);
			ipc_out_init(&o, IPC_SESSION_KILLED);
			ipc_put_u64(&o, hit->id);
			mon_send_worker(&o);
			session_close(hit);
			fprintf(f, "ok\n");
		} else {
			fprintf(f, "error: no such shell\n");
		}
	} else {
		fprintf(f, "error: unknown command\n");
	}
	fclose(f);
}

static int on_control(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct ucred cred;
	socklen_t cl = sizeof cred;
	char cmd[128];
	ssize_t n;
	int c;
	(void)s; (void)revents; (void)userdata;

	c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return 0;
	/* Blocking reads on a local root client, bounded by a short timeout. */
	struct timeval tv = { 2, 0 };
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.uid == 0 &&
	    (n = read(c, cmd, sizeof cmd - 1)) > 0) {
		cmd[n] = '\0';
		cmd[strcspn(cmd, "\r\n")] = '\0';
		control_answer(c, cmd);
	}
	close(c);
	return 0;
}

/*
 * 1 when a live monitor answers on path.  Starting anyway would unlink its
 * socket and, once we exit, leave it with none, so the caller refuses.  A file
 * nobody listens on (ECONNREFUSED) is a stale leftover that control_open
 * replaces, as before.  The probe sends nothing: the other monitor reads EOF
 * and closes.
 */
static int control_in_use(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (!path || !*path || strlen(path) >= sizeof sa.sun_path)
		return 0;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* EAGAIN: listening with a full backlog, which is alive as well. */
	r = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EAGAIN;
	close(fd);
	return r;
}

static void control_open(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof sa.sun_path];
	char *slash;

	if (!path || !*path || strlen(path) >= sizeof sa.sun_path)
		return;
	snprintf(dir, sizeof dir, "%s", path);
	if ((slash = strrchr(dir, '/')) && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0700);
	}
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	unlink(path);
	control_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (control_fd < 0 || bind(control_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    chmod(path, 0600) < 0 || listen(control_fd, 8) < 0) {
		log_warn_errno(errno, "control socket %s", path);
		close_safe(&control_fd);
		return;
	}
	if (sd_event_add_io(M.ev, &control_src, control_fd, EPOLLIN, on_control, NULL) < 0) {
		log_err("control socket %s: cannot watch it", path);
		close_safe(&control_fd);
		return;
	}
	sd_event_source_set_description(control_src, "control");
}

/* ---- signals and reaping --------------------------------------------- */

static void child_exited(pid_t pid, int status)
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
			session_destroy(s);
		return;
	}
}

static int on_sigchld(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	int status;
	pid_t pid;
	(void)s; (void)si; (void)userdata;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == M.worker_pid)
			worker_exited(status);
		else
			child_exited(pid, status);
	}
	if (M.stopping && M.worker_pid == 0 && M.n_children == 0)
		sd_event_exit(M.ev, 0);
	return 0;
}

static int load_config(struct conf *c, char *err, size_t errlen)
{
	int r;

	if (M.use_embedded)
		return conf_load_embedded(c);
	r = conf_load(M.conf_path, c, err, errlen);
	return r;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct conf next;
	char err[1024];
	struct timespec ts;
	(void)s; (void)si; (void)userdata;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
	if (load_config(&next, err, sizeof err) < 0) {
		log_err("reload failed, keeping the running configuration: %s", err);
		sd_notify(0, "READY=1");
		return 0;
	}
	if (mon_ensure_certificates(&next) < 0 || mon_sync_listeners(&next, NULL, 0) < 0) {
		log_err("reload failed, keeping the running configuration");
		conf_free(&next);
		sd_notify(0, "READY=1");
		return 0;
	}
	conf_free(&M.conf);
	M.conf = next;
	log_notice("configuration reloaded from %s", M.conf.path);
	mon_compat_refresh();     /* pwsh may have been installed or removed since */
	M.reloading = true;
	if (M.worker)
		send_config();
	else
		sd_notify(0, "READY=1");
	return 0;
}

static int stop_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s; (void)usec; (void)userdata;
	/* Anything still alive after the grace period is killed. */
	for (size_t i = 0; i < M.n_children; i++)
		kill(-M.children[i].pid, SIGKILL);
	if (M.worker_pid > 0)
		kill(M.worker_pid, SIGKILL);
	if (M.worker_pid == 0 && M.n_children == 0)
		sd_event_exit(M.ev, 0);
	return 0;
}

static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	sd_event_source *t = NULL;
	(void)s; (void)userdata;

	if (M.stopping)
		return 0;
	M.stopping = true;
	log_notice("received signal %u, shutting down", si->ssi_signo);
	sd_notify(0, "STOPPING=1");
	if (M.worker_pid > 0)
		kill(M.worker_pid, SIGTERM);
	for (size_t i = M.n_sessions; i-- > 0;)
		session_close(M.sessions[i]);
	if (sd_event_add_time_relative(M.ev, &t, CLOCK_MONOTONIC, 5 * 1000000ULL, 0, stop_tick, NULL) < 0) {
		log_err("cannot arm the stop timer; stopping at once");
		stop_tick(NULL, 0, NULL);
	} else {
		sd_event_source_set_description(t, "stop-grace");
		sd_event_source_set_floating(t, 1);
		sd_event_source_unref(t);
	}
	if (M.worker_pid == 0 && M.n_children == 0)
		sd_event_exit(M.ev, 0);
	return 0;
}

/* Every second: SIGKILL the process groups of sessions that ignore SIGTERM. */
static int reaper_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	static uint64_t last;
	(void)userdata;

	for (size_t i = 0; i < M.n_sessions; i++)
		if (M.sessions[i]->closing && last)
			session_signal_all(M.sessions[i], SIGKILL);
	last = usec;
	sd_event_source_set_time(s, usec + 3 * 1000000ULL);
	sd_event_source_set_enabled(s, SD_EVENT_ON);
	return 0;
}

int mon_main(const char *conf_path, bool embedded, bool debug)
{
	int *activated = NULL, n_act, r;
	char err[1024];
	struct passwd *pw;
	sd_event_source *tick = NULL;
	struct rlimit rl;
	sigset_t ss;

	M.conf_path = conf_path;
	M.use_embedded = embedded;
	M.debug = debug;
	if (geteuid() != 0)
		fatal("winrmd must be started as root (it runs logins and drops privileges itself)");
	M.exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (M.exe_fd < 0)
		fatal("cannot open /proc/self/exe: %m");
	if (load_config(&M.conf, err, sizeof err) < 0)
		fatal("%s", err);
	log_info("configuration from %s", M.conf.path);
	/* Before anything with side effects: certificates, listeners. */
	if (control_in_use(M.conf.service.control_socket) > 0)
		fatal("control socket %s: another winrmd answers on it; stop that one or give this "
		    "one its own ControlSocket", M.conf.service.control_socket);
	if (mon_ensure_system_user(WINRMD_USER) < 0 || !(pw = getpwnam(WINRMD_USER)))
		fatal("no system user %s and it could not be created", WINRMD_USER);
	M.worker_uid = pw->pw_uid;
	M.worker_gid = pw->pw_gid;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	if (mon_ensure_certificates(&M.conf) < 0)
		fatal("cannot prepare TLS certificates");
	n_act = sd_listen_fds(1);
	if (n_act > 0) {
		activated = xcalloc((size_t)n_act, sizeof *activated);
		for (int i = 0; i < n_act; i++) {
			int fd = SD_LISTEN_FDS_START + i;
			if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
				log_warn("socket-activated descriptor %d is not a listening stream socket", fd);
				close(fd);
				fd = -1;
			} else {
				fd_cloexec(fd, true);
				fd_nonblock(fd, true);
			}
			activated[i] = fd;
		}
	}
	r = mon_sync_listeners(&M.conf, activated, n_act > 0 ? (size_t)n_act : 0);
	free(activated);
	if (r < 0)
		fatal("cannot open listeners");
	if (M.n_listeners == 0)
		log_warn("no enabled listeners: winrmd will not accept connections");

	sigemptyset(&ss);
	sigaddset(&ss, SIGCHLD);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sd_event_default(&M.ev) < 0)
		fatal("sd_event_default failed");
	if (ev_add_signal(M.ev, SIGCHLD, on_sigchld, "sigchld") < 0 ||
	    ev_add_signal(M.ev, SIGHUP, on_sighup, "sighup") < 0 ||
	    ev_add_signal(M.ev, SIGTERM, on_sigterm, "sigterm") < 0 ||
	    ev_add_signal(M.ev, SIGINT, on_sigterm, "sigint") < 0 ||
	    sd_event_add_time_relative(M.ev, &tick, CLOCK_MONOTONIC, 3 * 1000000ULL, 0, reaper_tick, NULL) < 0)
		fatal("cannot set up the monitor's event loop");
	sd_event_source_set_description(tick, "reaper");
	sd_event_set_watchdog(M.ev, true);
	if (ntlm_crypto_init() < 0)
		log_warn("OpenSSL's legacy provider (MD4, RC4) is missing: NTLM logins will fail");

	control_open(M.conf.service.control_socket);
	mon_compat_refresh();
	worker_start();
	r = sd_event_loop(M.ev);
	if (control_fd >= 0)
		unlink(M.conf.service.control_socket);
	log_info("stopped");
	for (size_t i = M.n_sessions; i-- > 0;)
		session_destroy(M.sessions[i]);
	sd_event_source_unref(tick);
	return r < 0 ? 1 : 0;
}
