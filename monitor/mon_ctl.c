/*
 * mon_ctl.c - the control socket that winrmctl shells uses to list and end
 * shells (monitor, root).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <systemd/sd-event.h>

#include "ipc.h"
#include "log.h"
#include "mon_int.h"
#include "util.h"

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
			mon_session_close(hit);
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
 * nobody listens on (ECONNREFUSED) is a stale leftover that mon_control_open
 * replaces, as before.  The probe sends nothing: the other monitor reads EOF
 * and closes.
 */
int mon_control_in_use(const char *path)
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

void mon_control_open(const char *path)
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

/* At exit: the socket goes with the monitor that made it. */
void mon_control_remove(const char *path)
{
	if (control_fd >= 0)
		unlink(path);
}
