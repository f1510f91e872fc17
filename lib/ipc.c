/*
 * ipc.c - framing, strict parsing and queueing of monitor<->worker messages
 * (monitor and worker).
 *
 * The monitor treats everything the worker says as hostile: a worker is
 * assumed compromised the moment it has parsed a network byte.  So every
 * read is bounds-checked here and a single bad field poisons the message.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "ipc.h"
#include "log.h"

static bool need(struct ipc_msg *m, size_t n)
{
	if (m->bad || n > m->len - m->off) {
		m->bad = true;
		return false;
	}
	return true;
}

/* A fixed-size field, or zeroes once the message is bad. */
static void take(struct ipc_msg *m, void *v, size_t n)
{
	if (!need(m, n)) {
		memset(v, 0, n);
		return;
	}
	memcpy(v, m->data + m->off, n);
	m->off += n;
}

uint32_t ipc_u32(struct ipc_msg *m)
{
	uint32_t v;

	take(m, &v, sizeof v);
	return v;
}

int32_t ipc_i32(struct ipc_msg *m)
{
	return (int32_t)ipc_u32(m);
}

uint64_t ipc_u64(struct ipc_msg *m)
{
	uint64_t v;

	take(m, &v, sizeof v);
	return v;
}

const unsigned char *ipc_bytes(struct ipc_msg *m, size_t *n)
{
	const unsigned char *p;
	uint32_t len = ipc_u32(m);

	*n = 0;
	if (len > IPC_MAX_STRING || !need(m, (size_t)len + 1)) {
		m->bad = true;
		return NULL;
	}
	p = m->data + m->off;
	if (p[len] != '\0') {           /* every field is NUL-terminated on the wire */
		m->bad = true;
		return NULL;
	}
	m->off += (size_t)len + 1;
	*n = len;
	return p;
}

const char *ipc_str(struct ipc_msg *m)
{
	size_t n;
	const unsigned char *p = ipc_bytes(m, &n);

	if (!p)
		return "";
	if (memchr(p, '\0', n)) {
		m->bad = true;
		return "";
	}
	return (const char *)p;
}

int ipc_fd(struct ipc_msg *m, size_t i)
{
	int fd;

	if (i >= m->nfds || m->fds[i] < 0) {
		m->bad = true;
		return -EBADF;
	}
	fd = m->fds[i];
	m->fds[i] = -1;
	return fd;
}

bool ipc_end(struct ipc_msg *m)
{
	if (m->off != m->len)
		m->bad = true;
	for (size_t i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)     /* a descriptor nobody asked for */
			m->bad = true;
	return !m->bad;
}

enum ipc_sender ipc_type_sender(uint32_t type)
{
	return type < IPC_AUTH_PASSWORD ? IPC_FROM_MONITOR : IPC_FROM_WORKER;
}

int ipc_dispatch(const struct ipc_handler *table, size_t n, unsigned state, struct ipc_msg *m)
{
	const struct ipc_handler *h = NULL;

	for (size_t i = 0; i < n && !h; i++)
		if (table[i].type == m->type)
			h = &table[i];
	if (!h) {
		m->bad = true;
		return log_err_errno(-EBADMSG, "IPC: message type %u is not one the peer may send",
		    m->type);
	}
	if (h->from != ipc_type_sender(m->type)) {
		m->bad = true;
		return log_err_errno(-EPROTO, "IPC: %s is listed for the wrong sender", h->name);
	}
	if (!(h->states & state)) {
		m->bad = true;
		return log_err_errno(-EPERM, "IPC: %s is not accepted in state 0x%x", h->name, state);
	}
	h->fn(m);
	if (!m->bad)
		ipc_end(m);     /* a handler cannot let unread bytes or descriptors through */
	if (m->bad)
		return log_err_errno(-EBADMSG, "IPC: malformed %s", h->name);
	return 0;
}

void ipc_out_init(struct ipc_out *o, uint32_t type)
{
	memset(o, 0, sizeof *o);
	buf_init(&o->b, IPC_MAX_MSG);
	ipc_put_u32(o, type);
}

static void put(struct ipc_out *o, const void *p, size_t n)
{
	if (o->err)
		return;
	if (buf_append(&o->b, p, n) < 0)
		o->err = -EMSGSIZE;
}

void ipc_put_u32(struct ipc_out *o, uint32_t v) { put(o, &v, 4); }
void ipc_put_i32(struct ipc_out *o, int32_t v) { put(o, &v, 4); }
void ipc_put_u64(struct ipc_out *o, uint64_t v) { put(o, &v, 8); }

void ipc_put_bytes(struct ipc_out *o, const void *p, size_t n)
{
	uint32_t len = (uint32_t)n;

	if (n > IPC_MAX_STRING) {
		if (!o->err)
			o->err = -E2BIG;
		return;
	}
	put(o, &len, 4);
	put(o, p, n);
	put(o, "", 1);
}

void ipc_put_str(struct ipc_out *o, const char *s)
{
	ipc_put_bytes(o, s ? s : "", s ? strlen(s) : 0);
}

void ipc_put_fd(struct ipc_out *o, int fd)
{
	if (o->nfds >= IPC_MAX_FDS) {
		if (fd >= 0)
			close(fd);
		if (!o->err)
			o->err = -EMSGSIZE;
		return;
	}
	o->fds[o->nfds++] = fd;
}

uint32_t ipc_out_type(const struct ipc_out *o)
{
	uint32_t t = 0;

	if (o->b.len >= 4)
		memcpy(&t, o->b.data, 4);
	return t;
}

void ipc_out_free(struct ipc_out *o)
{
	if (o->secret)
		buf_free_secret(&o->b);
	else
		buf_free(&o->b);
	for (size_t i = 0; i < o->nfds; i++)
		close(o->fds[i]);
	o->nfds = 0;
}

struct ipc_pending {
	struct ipc_pending *next;
	struct ipc_out out;
};

struct ipc_chan {
	int fd;
	sd_event_source *src;
	struct ipc_pending *head, *tail;
	ipc_msg_fn on_msg;
	ipc_close_fn on_close;
	void *userdata;
	unsigned char *rbuf;
};

static int send_one(int fd, struct ipc_out *o)
{
	struct msghdr mh = { 0 };
	struct iovec iov = { o->b.data, o->b.len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
		struct cmsghdr align;
	} cm;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (o->nfds) {
		struct cmsghdr *c;
		memset(&cm, 0, sizeof cm);
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * o->nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * o->nfds);
		memcpy(CMSG_DATA(c), o->fds, sizeof(int) * o->nfds);
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return -errno;
	return 0;
}

static void chan_update_events(struct ipc_chan *ch)
{
	sd_event_source_set_io_events(ch->src, EPOLLIN | (ch->head ? EPOLLOUT : 0));
}

static void chan_fail(struct ipc_chan *ch)
{
	ipc_close_fn cb = ch->on_close;

	sd_event_source_set_enabled(ch->src, SD_EVENT_OFF);
	if (cb) {
		ch->on_close = NULL;
		cb(ch, ch->userdata);
	}
}

static int flush_queue(struct ipc_chan *ch)
{
	while (ch->head) {
		struct ipc_pending *p = ch->head;
		int r = send_one(ch->fd, &p->out);
		if (r == -EAGAIN)
			break;
		if (r < 0)
			return r;
		ch->head = p->next;
		if (!ch->head)
			ch->tail = NULL;
		ipc_out_free(&p->out);
		free(p);
	}
	chan_update_events(ch);
	return 0;
}

int ipc_recv_blocking(int fd, unsigned char *buf, size_t cap, struct ipc_msg *m)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { buf, cap };
	struct msghdr mh = { 0 };
	ssize_t n;

	memset(m, 0, sizeof *m);
	for (size_t i = 0; i < IPC_MAX_FDS; i++)
		m->fds[i] = -1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof cm.buf;
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int *fds = (int *)CMSG_DATA(c);
			for (size_t i = 0; i < k; i++) {
				if (m->nfds < IPC_MAX_FDS)
					m->fds[m->nfds++] = fds[i];
				else
					close(fds[i]);
			}
		}
	}
	m->data = buf;
	m->len = (size_t)n;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		m->bad = true;
	m->type = ipc_u32(m);
	return 0;
}

static void msg_release(struct ipc_msg *m)
{
	for (size_t i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
}

static int chan_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct ipc_chan *ch = userdata;
	(void)s;
	(void)fd;

	if (revents & EPOLLOUT) {
		if (flush_queue(ch) < 0) {
			chan_fail(ch);
			return 0;
		}
	}
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		/* Bounded batch so one side cannot starve the other's loop. */
		for (int i = 0; i < 64; i++) {
			struct ipc_msg m;
			int r = ipc_recv_blocking(ch->fd, ch->rbuf, IPC_MAX_MSG, &m);
			if (r == -EAGAIN)
				break;
			if (r < 0 || m.bad) {
				if (r != -ECONNRESET)
					log_err("ipc: malformed or failed receive, closing channel");
				msg_release(&m);
				chan_fail(ch);
				return 0;
			}
			ch->on_msg(ch, &m, ch->userdata);
			wipe(ch->rbuf, m.len);  /* passwords pass through here */
			msg_release(&m);
			if (m.bad) {
				log_err("ipc: malformed message of type %u, closing channel", m.type);
				chan_fail(ch);
				return 0;
			}
			if (!ch->on_close)      /* handler closed the channel */
				return 0;
		}
	}
	return 0;
}

int ipc_chan_new(sd_event *ev, int fd, ipc_msg_fn on_msg, ipc_close_fn on_close,
    void *userdata, struct ipc_chan **out)
{
	struct ipc_chan *ch = xcalloc(1, sizeof *ch);
	int r, sz = 4 * 1024 * 1024;

	fd_nonblock(fd, true);
	fd_cloexec(fd, true);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	ch->fd = fd;
	ch->on_msg = on_msg;
	ch->on_close = on_close;
	ch->userdata = userdata;
	ch->rbuf = xmalloc(IPC_MAX_MSG);
	r = sd_event_add_io(ev, &ch->src, fd, EPOLLIN, chan_io, ch);
	if (r >= 0)
		sd_event_source_set_description(ch->src, "ipc");
	if (r < 0) {
		free(ch->rbuf);
		free(ch);
		return r;
	}
	*out = ch;
	return 0;
}

int ipc_send(struct ipc_chan *ch, struct ipc_out *o)
{
	struct ipc_pending *p;
	int r;

	if (o->err) {
		r = o->err;
		ipc_out_free(o);
		return r;
	}
	if (!ch->on_close) {            /* channel already failed */
		ipc_out_free(o);
		return -ECONNRESET;
	}
	if (!ch->head) {
		r = send_one(ch->fd, o);
		if (r == 0) {
			ipc_out_free(o);
			return 0;
		}
		if (r != -EAGAIN) {
			ipc_out_free(o);
			chan_fail(ch);
			return r;
		}
	}
	p = xcalloc(1, sizeof *p);
	p->out = *o;
	memset(o, 0, sizeof *o);
	if (ch->tail)
		ch->tail->next = p;
	else
		ch->head = p;
	ch->tail = p;
	chan_update_events(ch);
	return 0;
}

int ipc_chan_fd(struct ipc_chan *ch) { return ch->fd; }

void ipc_chan_free(struct ipc_chan *ch)
{
	if (!ch)
		return;
	while (ch->head) {
		struct ipc_pending *p = ch->head;
		ch->head = p->next;
		ipc_out_free(&p->out);
		free(p);
	}
	sd_event_source_unref(ch->src);
	close(ch->fd);
	free(ch->rbuf);
	free(ch);
}
