/*
 * mon_pam.c - password checks, account checks and login sessions through
 * PAM (monitor).
 *
 * The conversation answers only the password prompt; the PAM fail delay is
 * taken over (PAM_FAIL_DELAY) so a wrong password does not stall the whole
 * monitor: mon_login.c delays the negative answer with a timer instead.
 *
 * Password checks run in a short-lived child of the monitor, as sshd runs
 * PAM: a slow hash (yescrypt) or a slow module (sssd, LDAP) then holds up
 * only that login, logins use every CPU, and the monitor keeps starting and
 * reaping shells meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <shadow.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>

#include <systemd/sd-event.h>

#include "log.h"
#include "mon.h"
#include "util.h"
#include "wlimits.h"

struct conv_data {
	const char *user;
	const char *password;
};

static int conv_fn(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	struct conv_data *cd = data;
	struct pam_response *r;

	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	r = xcalloc((size_t)n, sizeof *r);
	for (int i = 0; i < n; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			if (!cd->password)
				goto out;
			r[i].resp = xstrdup(cd->password);
			break;
		case PAM_PROMPT_ECHO_ON:
			/* Only a user name prompt can be answered without a terminal. */
			if (!cd->user)
				goto out;
			r[i].resp = xstrdup(cd->user);
			break;
		case PAM_ERROR_MSG:
		case PAM_TEXT_INFO:
			log_debug("pam: %s", msg[i]->msg ? msg[i]->msg : "");
			break;
		default:
			goto out;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
out:
	for (int i = 0; i < n; i++)
		free_secret_str(r[i].resp);
	free(r);
	return PAM_CONV_ERR;
}

static void no_fail_delay(int status, unsigned delay, void *appdata)
{
	(void)status; (void)delay; (void)appdata;
}

int mon_pam_authenticate(const char *service, const char *user, const char *password,
    const char *remote, char **canon_user)
{
	struct conv_data cd = { user, password };
	struct pam_conv conv = { conv_fn, &cd };
	pam_handle_t *pamh = NULL;
	const void *item = NULL;
	int pr, result;

	*canon_user = NULL;
	pr = pam_start(service, user, &conv, &pamh);
	if (pr != PAM_SUCCESS) {
		log_err("pam_start(%s): %s", service, pam_strerror(pamh, pr));
		return -EIO;
	}
	pam_set_item(pamh, PAM_RHOST, remote);
	pam_set_item(pamh, PAM_RUSER, user);
	pam_set_item(pamh, PAM_FAIL_DELAY, (const void *)no_fail_delay);
	pr = pam_authenticate(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	if (pr != PAM_SUCCESS) {
		log_debug("pam_authenticate(%s): %s", user, pam_strerror(pamh, pr));
		result = (pr == PAM_ACCT_EXPIRED || pr == PAM_PERM_DENIED) ? -EACCES : -EPERM;
		goto out;
	}
	/* A module may rewrite the user; the name PAM settled on is the one we run as. */
	if (pam_get_item(pamh, PAM_USER, &item) != PAM_SUCCESS || !item) {
		result = -EIO;
		goto out;
	}
	pr = pam_acct_mgmt(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	if (pr != PAM_SUCCESS) {
		log_debug("pam_acct_mgmt(%s): %s", user, pam_strerror(pamh, pr));
		result = -EACCES;   /* expired, locked, or a password change is due */
		goto out;
	}
	*canon_user = xstrdup(item);
	result = 0;
out:
	pam_end(pamh, pr | PAM_DATA_SILENT);
	return result;
}

/* What the child writes back: an int32 result, then the canonical user name. */
struct mon_pam_job {
	pid_t pid;
	int fd;
	sd_event_source *io;
	unsigned char buf[sizeof(int32_t) + AUTH_MAX_USER];
	size_t len;
	mon_pam_done_fn fn;
	void *ctx;
};

static void pam_job_free(struct mon_pam_job *j)
{
	sd_event_source_unref(j->io);
	if (j->fd >= 0)
		close(j->fd);
	free(j);
}

static int pam_job_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct mon_pam_job *j = userdata;
	char *canon = NULL;
	int32_t result = -EIO;
	ssize_t n;
	(void)s; (void)revents;

	n = read(fd, j->buf + j->len, sizeof j->buf - j->len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n > 0) {
		j->len += (size_t)n;
		if (j->len < sizeof j->buf)
			return 0;
	}
	/* EOF, an error or a full buffer: the child has said all it will. */
	if (j->len >= sizeof result) {
		memcpy(&result, j->buf, sizeof result);
		if (result == 0) {
			size_t ul = j->len - sizeof result;
			canon = ul > 0 && ul < AUTH_MAX_USER ? strndup((char *)j->buf + sizeof result, ul) : NULL;
			if (!canon || strlen(canon) != ul) {     /* empty, too long, or a NUL inside */
				free(canon);
				canon = NULL;
				result = -EIO;
			}
		} else if (result != -EPERM && result != -EACCES) {
			result = -EIO;
		}
	}
	if (j->len < sizeof result)
		log_err("the password check of child %d ended without an answer", (int)j->pid);
	j->fn(j->ctx, result, canon);
	pam_job_free(j);
	return 0;
}

static _Noreturn void pam_job_child(int fd, const char *service, const char *user,
    const char *password, const char *remote)
{
	unsigned char out[sizeof(int32_t) + AUTH_MAX_USER];
	char *canon = NULL;
	int32_t r;
	size_t n = sizeof r;
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Nothing of the monitor's (worker channel, sessions' pipes) stays open here. */
	if (dup2(fd, 3) < 0)
		_exit(1);
	close_range(4, ~0U, 0);
	log_stderr_only();
	r = mon_pam_authenticate(service, user, password, remote, &canon);
	if (r == 0 && strlen(canon) >= AUTH_MAX_USER)
		r = -EIO;
	memcpy(out, &r, sizeof r);
	if (r == 0) {
		memcpy(out + n, canon, strlen(canon));
		n += strlen(canon);
	}
	_exit(write(3, out, n) == (ssize_t)n ? 0 : 1);
}

int mon_pam_authenticate_start(sd_event *ev, const char *service, const char *user,
    const char *password, const char *remote, mon_pam_done_fn fn, void *ctx,
    struct mon_pam_job **out)
{
	struct mon_pam_job *j;
	int p[2], r;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	j = xcalloc(1, sizeof *j);
	j->fd = p[0];
	j->fn = fn;
	j->ctx = ctx;
	j->pid = fork();
	if (j->pid < 0) {
		r = -errno;
		close(p[1]);
		pam_job_free(j);
		return r;
	}
	if (j->pid == 0)
		pam_job_child(p[1], service, user, password, remote);
	close(p[1]);
	r = sd_event_add_io(ev, &j->io, j->fd, EPOLLIN, pam_job_io, j);
	if (r < 0) {
		mon_pam_job_cancel(j);
		return r;
	}
	sd_event_source_set_description(j->io, "pam-job");
	*out = j;
	return 0;
}

void mon_pam_job_cancel(struct mon_pam_job *j)
{
	/* The monitor's SIGCHLD handler reaps it. */
	kill(j->pid, SIGKILL);
	pam_job_free(j);
}

/*
 * usermod -L and passwd -l lock an account by putting '!' before its
 * password hash. pam_unix's account module does not look at that (only
 * password authentication fails), so a login that never asked for the Unix
 * password would get around the lock. Windows refuses a disabled account to
 * every scheme, and so do we. A bare "!" (an account that never had a
 * password, as useradd leaves it) is not a lock: such users may well log in
 * with Kerberos only.
 */
static bool shadow_locked(const char *user)
{
	struct spwd *sp = getspnam(user);

	return sp && sp->sp_pwdp && sp->sp_pwdp[0] == '!' && sp->sp_pwdp[1] != '\0';
}

int mon_pam_account(const char *service, const char *user, const char *remote)
{
	struct conv_data cd = { user, NULL };
	struct pam_conv conv = { conv_fn, &cd };
	pam_handle_t *pamh = NULL;
	int pr;

	/* For logins PAM did not authenticate (NTLM, Kerberos, certificates): account checks only. */
	if (shadow_locked(user)) {
		log_notice("the account %s is locked (its password hash starts with '!')", user);
		return -EPERM;
	}
	pr = pam_start(service, user, &conv, &pamh);
	if (pr != PAM_SUCCESS)
		return -EIO;
	pam_set_item(pamh, PAM_RHOST, remote);
	pr = pam_acct_mgmt(pamh, PAM_SILENT);
	if (pr != PAM_SUCCESS)
		log_notice("PAM account management refused %s: %s", user, pam_strerror(pamh, pr));
	pam_end(pamh, pr);
	return pr == PAM_SUCCESS ? 0 : -EACCES;
}

bool mon_authorized(const struct conf *c, const char *user, uid_t uid, gid_t gid)
{
	return mon_authorized_lists(c->service.allowed_users, c->service.allowed_groups, user, uid, gid);
}

bool mon_authorized_lists(const char *users, const char *allowed_groups, const char *user,
    uid_t uid, gid_t gid)
{
	gid_t groups[256];
	int ng = (int)ARRAY_SIZE(groups);

	if (uid == 0)
		return true;
	if (conf_list_has(users, user))
		return true;
	if (getgrouplist(user, gid, groups, &ng) < 0)
		ng = (int)ARRAY_SIZE(groups);  /* truncated: check what we got */
	for (int i = 0; i < ng; i++) {
		struct group *g = getgrgid(groups[i]);
		if (g && conf_list_has(allowed_groups, g->gr_name))
			return true;
	}
	return false;
}

int mon_pam_open_session(const char *service, struct mon_session *s)
{
	static struct pam_conv conv = { conv_fn, NULL };
	struct conv_data *cd = xcalloc(1, sizeof *cd);
	int pr;

	cd->user = s->user;
	conv.appdata_ptr = cd;
	pr = pam_start(service, s->user, &conv, &s->pamh);
	if (pr != PAM_SUCCESS) {
		free(cd);
		log_err("pam_start(%s): %s", service, pam_strerror(s->pamh, pr));
		s->pamh = NULL;
		return -EIO;
	}
	pam_set_item(s->pamh, PAM_RHOST, s->remote);
	pam_set_item(s->pamh, PAM_TTY, "winrm");
	/* Let pam_systemd register a proper non-interactive logind session. */
	pam_putenv(s->pamh, "XDG_SESSION_CLASS=user");
	pam_putenv(s->pamh, "XDG_SESSION_TYPE=unspecified");
	pr = pam_acct_mgmt(s->pamh, PAM_SILENT);
	if (pr == PAM_SUCCESS)
		pr = pam_open_session(s->pamh, PAM_SILENT);
	if (pr != PAM_SUCCESS) {
		log_warn("pam session for %s refused: %s", s->user, pam_strerror(s->pamh, pr));
		pam_end(s->pamh, pr);
		s->pamh = NULL;
		free(cd);
		return -EACCES;
	}
	s->pam_env = pam_getenvlist(s->pamh);
	s->conv_data = cd;
	return 0;
}

void mon_pam_close_session(struct mon_session *s)
{
	if (!s->pamh)
		return;
	pam_close_session(s->pamh, PAM_SILENT);
	pam_end(s->pamh, PAM_SUCCESS);
	s->pamh = NULL;
	free(s->conv_data);
	s->conv_data = NULL;
	if (s->pam_env) {
		for (char **e = s->pam_env; *e; e++)
			free(*e);
		free(s->pam_env);
		s->pam_env = NULL;
	}
}
