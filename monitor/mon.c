/*
 * mon.c - the root monitor's start-up, reload, stop and reaping (monitor,
 * root).
 *
 * The worker asks; the monitor checks and answers.  Every request names a
 * login the monitor itself verified (by id), and a process is only ever
 * started for a session that belongs to that login's user.  A malformed
 * request is fatal to the channel: the worker is killed and restarted.
 *
 * The roles live in their own files: mon_login.c (logins), mon_session.c
 * (sessions and their processes), mon_worker.c (the worker and the request
 * table), mon_listen.c (listening sockets), mon_ctl.c (the control socket),
 * all above mon_state.c (the shared state).  What is left here is what
 * touches them all: loading the configuration, SIGHUP, SIGTERM and SIGCHLD.
 */
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "mon.h"
#include "mon_int.h"
#include "ntlm.h"
#include "util.h"
#include "winrmd.h"

/* ---- signals and reaping --------------------------------------------- */

static int on_sigchld(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	int status;
	pid_t pid;
	(void)s; (void)si; (void)userdata;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == M.worker_pid)
			mon_worker_exited(status);
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
		mon_send_config();
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
	mon_worker_start();
	r = sd_event_loop(M.ev);
	mon_control_remove(M.conf.service.control_socket);
	log_info("stopped");
	for (size_t i = M.n_sessions; i-- > 0;)
		mon_session_destroy(M.sessions[i]);
	sd_event_source_unref(tick);
	return r < 0 ? 1 : 0;
}
