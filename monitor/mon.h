/*
 * mon.h - the root monitor's internal interfaces (monitor only).
 *
 * The monitor owns everything that needs root: configuration files, listening
 * sockets, key files, PAM, and the creation of processes as other users.  It
 * never parses network bytes; the worker's requests arrive through ipc.c and
 * every argument is re-checked here.
 */
#ifndef WINRMD_MON_H
#define WINRMD_MON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <security/pam_appl.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "ipc.h"

/* A login the monitor verified itself (one per Basic credential and connection). */
struct mon_login {
	uint64_t id;
	char *user;
	uid_t uid;
	gid_t gid;
	char *remote;
};

/* An open PAM session, the parent of one shell's processes. */
struct mon_session {
	uint64_t id;
	uid_t owner_uid;        /* the login that opened it; differs from uid under RunAsUser */
	char *user;             /* whom processes run as */
	uid_t uid;
	gid_t gid;
	char *command;          /* runspace command of its session configuration, or NULL */
	char *config_file;      /* ConfigurationFile (.pssc) for pwsh, or NULL */
	char *home, *shell;
	char *shell_id;         /* for logs and winrmctl shells */
	char *remote;
	char *resource;         /* resource URI of the shell */
	uint64_t started_ms;
	pam_handle_t *pamh;
	void *conv_data;        /* owned, lives as long as pamh */
	char **pam_env;
	unsigned nchildren;
	bool closing;
};

/* mon_worker.c: the request table, and the worker's states it is read in */
enum {
	MON_W_STARTING = 1u << 0,       /* its first configuration is not yet acknowledged */
	MON_W_SERVING = 1u << 1,
	MON_W_RELOADING = 1u << 2,      /* serving, and a new configuration is on its way */
	MON_W_ALL = MON_W_STARTING | MON_W_SERVING | MON_W_RELOADING,
};
extern const struct ipc_handler mon_ipc_handlers[];
extern const size_t mon_ipc_n_handlers;
unsigned mon_worker_state(unsigned configs_unacked, bool served);

/* mon_login.c: NTLM server challenges, issued by the monitor and each accepted once */
void mon_ntlm_challenge_issue(unsigned char out[8]);
bool mon_ntlm_challenge_take(const unsigned char ch[8]);
void mon_ntlm_challenges_forget(void);

/* mon_pam.c */
int mon_pam_authenticate(const char *service, const char *user, const char *password,
    const char *remote, char **canon_user);
/*
 * The same check in a child process. fn gets 0 and the canonical user name
 * (the callee's to free), -EPERM (bad credentials), -EACCES (account refused)
 * or -EIO; it is not called after mon_pam_job_cancel().
 */
struct mon_pam_job;
typedef void (*mon_pam_done_fn)(void *ctx, int result, char *canon_user);
int mon_pam_authenticate_start(sd_event *ev, const char *service, const char *user,
    const char *password, const char *remote, mon_pam_done_fn fn, void *ctx,
    struct mon_pam_job **job);
void mon_pam_job_cancel(struct mon_pam_job *job);
int mon_pam_account(const char *service, const char *user, const char *remote);
bool mon_authorized(const struct conf *c, const char *user, uid_t uid, gid_t gid);
bool mon_authorized_lists(const char *users, const char *groups, const char *user, uid_t uid,
    gid_t gid);
int mon_pam_open_session(const char *service, struct mon_session *s);
void mon_pam_close_session(struct mon_session *s);

/* mon_spawn.c */
#define MON_COMPAT_DIR "/run/winrmd-compat"     /* powershell -> pwsh, for Windows tools */
void mon_compat_refresh(void);
int mon_spawn(struct mon_session *s, const char *cwd, char **argv, char **client_env,
    char *const *own_env, unsigned long long mem_limit, pid_t *pid, int fds[3]);
bool mon_pwsh_server_argv(char *const *argv, size_t argc);
extern const char mon_pwsh_init_script[];

/* mon_cert.c */
int mon_cert_map(const struct conf *c, const unsigned char *const *der, const size_t *len,
    size_t n, char **user, char *why, size_t whylen);

/* mon_user.c helpers shared with the worker start-up */
int mon_ensure_system_user(const char *name);

#endif
