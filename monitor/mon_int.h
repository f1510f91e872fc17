/*
 * mon_int.h - the state the monitor's files share, and the functions they
 * call in one another (monitor only; mon.h is what the rest of winrmd sees).
 *
 * Calls only go down, never back: mon_state.c at the bottom, then
 * mon_login.c, mon_session.c (calls mon_login.c), mon_worker.c (calls both,
 * for its request table and for what dies with the worker), mon_ctl.c
 * (calls mon_session.c), mon_listen.c (calls nothing), and mon.c on top.
 */
#ifndef WINRMD_MON_INT_H
#define WINRMD_MON_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "conf.h"
#include "ipc.h"
#include "mon.h"
#include "wlimits.h"

struct mon_listener {
	char *key;              /* transport|address|port: identity across reloads */
	int fd;
	bool used;
};

struct mon_child {
	pid_t pid;
	struct mon_session *s;
};

struct ntlm_challenge {
	unsigned char ch[8];
	uint64_t issued_ms;
};

struct pending_auth;
struct auth_job;

struct mon_state {
	sd_event *ev;
	struct conf conf;
	const char *conf_path;
	bool use_embedded;
	bool debug;
	int exe_fd;
	uid_t worker_uid;
	gid_t worker_gid;
	struct mon_listener listeners[CONF_MAX_LISTENERS];
	size_t n_listeners;
	pid_t worker_pid;
	struct ipc_chan *worker;
	uint64_t worker_started_ms;
	sd_event_source *restart_timer;
	bool ready_sent, reloading, stopping;
	struct mon_login *logins[MON_MAX_LOGINS];
	size_t n_logins;
	struct mon_session **sessions;
	size_t n_sessions;
	struct mon_child *children;
	size_t n_children, cap_children;
	struct pending_auth *pending;
	unsigned n_pending;
	struct ntlm_challenge challenges[MON_NTLM_CHALLENGES_MAX]; /* oldest first */
	size_t n_challenges;
	struct auth_job *auth_jobs;
	unsigned n_auth_jobs;
	unsigned configs_unacked;       /* configurations sent, not yet answered by WORKER_READY */
	bool worker_served;             /* this worker has been ready once */
};

/* mon_state.c */
extern struct mon_state M;
uint64_t mon_new_id(void);
void mon_send_worker(struct ipc_out *o);
bool mon_str_clean(const char *s, size_t max);

/* mon_login.c: verified logins, and the handlers of the login requests */
struct mon_login *mon_login_find(uint64_t id);
void mon_login_free(struct mon_login *l);
void mon_pending_flush(void);
void mon_auth_jobs_cancel(void);
void mon_h_auth_password(struct ipc_msg *m);
void mon_h_ntlm_challenge(struct ipc_msg *m);
void mon_h_ntlm_verify(struct ipc_msg *m);
void mon_h_gss_accept(struct ipc_msg *m);
void mon_h_cert_login(struct ipc_msg *m);
void mon_h_login_release(struct ipc_msg *m);

/* mon_session.c: sessions, their processes, and the handlers of the requests about them */
void mon_session_destroy(struct mon_session *s);
void mon_session_signal_all(struct mon_session *s, int sig);
void mon_session_close(struct mon_session *s);
void mon_child_exited(pid_t pid, int status);
void mon_h_session_open(struct ipc_msg *m);
void mon_h_spawn(struct ipc_msg *m);
void mon_h_signal(struct ipc_msg *m);
void mon_h_session_close(struct ipc_msg *m);

/* mon_worker.c: the worker's start, configuration and end */
void mon_worker_start(void);
void mon_worker_exited(int status);
void mon_send_config(void);

/* mon_listen.c */
int mon_sync_listeners(const struct conf *c, int *activated, size_t n_activated);
int mon_ensure_certificates(const struct conf *c);

/* mon_ctl.c */
int mon_control_in_use(const char *path);
void mon_control_open(const char *path);
void mon_control_remove(const char *path);

#endif
