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

/* ---- the IPC table ---------------------------------------------------- */

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
	{ IPC_SESSION_OPEN,   "SESSION_OPEN",   IPC_FROM_WORKER, LIVE, mon_h_session_open },
	{ IPC_SPAWN,          "SPAWN",          IPC_FROM_WORKER, LIVE, mon_h_spawn },
	{ IPC_SIGNAL,         "SIGNAL",         IPC_FROM_WORKER, LIVE, mon_h_signal },
	{ IPC_SESSION_CLOSE,  "SESSION_CLOSE",  IPC_FROM_WORKER, LIVE, mon_h_session_close },
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
		mon_session_close(M.sessions[i]);
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

/* ---- signals and reaping --------------------------------------------- */

static int on_sigchld(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	int status;
	pid_t pid;
	(void)s; (void)si; (void)userdata;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == M.worker_pid)
			worker_exited(status);
		else
			mon_child_exited(pid, status);
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
		mon_session_close(M.sessions[i]);
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
			mon_session_signal_all(M.sessions[i], SIGKILL);
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
	if (mon_control_in_use(M.conf.service.control_socket) > 0)
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

	mon_control_open(M.conf.service.control_socket);
	mon_compat_refresh();
	worker_start();
	r = sd_event_loop(M.ev);
	mon_control_remove(M.conf.service.control_socket);
	log_info("stopped");
	for (size_t i = M.n_sessions; i-- > 0;)
		mon_session_destroy(M.sessions[i]);
	sd_event_source_unref(tick);
	return r < 0 ? 1 : 0;
}
