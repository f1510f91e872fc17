/*
 * mon_worker.c - supervision of the unprivileged worker, and the table of
 * what it may ask (monitor, root).
 *
 * The worker is started from the monitor's own executable as the winrmd
 * user, gets the configuration with its listening sockets and keys over the
 * IPC channel, and is restarted when it dies.  Everything it held dies with
 * it: its logins, its NTLM handshakes and its shells.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "ipc.h"
#include "log.h"
#include "mon_int.h"
#include "tls.h"
#include "util.h"
#include "winrmd.h"

/* ---- the request table ------------------------------------------------ */

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
		mon_worker_start();
	return 0;
}

void mon_worker_exited(int status)
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
		mon_worker_start();
		return;
	}
	sd_event_source_set_description(M.restart_timer, "worker-restart");
}

void mon_send_config(void)
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

void mon_worker_start(void)
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
	mon_send_config();
}
