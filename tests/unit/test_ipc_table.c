/*
 * test_ipc_table.c - unit tests of the two IPC request tables (mon_worker.c's
 * and net.c's) through ipc_dispatch, included by unit.c (which provides CHECK
 * and registers IPC_TABLE_TESTS).
 *
 * Every row of both tables is driven with a well-formed sample of its
 * message: in each state the row does not list (refused before the
 * handler), cut at every byte, with a byte or a descriptor too many (refused
 * by the handler's strict reading).  A row without a sample fails the test,
 * so a new message cannot be added untested.
 */
#include "mm.h"
#include "net.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/common_interface_defs.h>
#endif

/* One well-formed message of a type; req is the id a reply answers. */
static void sample_build(uint32_t type, uint32_t req, struct ipc_out *o)
{
	static const unsigned char key16[16] = { 1, 2, 3 }, ch8[8] = { 9, 8, 7 };

	ipc_out_init(o, type);
	switch (type) {
	case IPC_CONFIG:
		ipc_put_str(o, "[Service]\n");
		ipc_put_u32(o, 0);
		break;
	case IPC_LISTENER:
		ipc_put_str(o, "http");
		ipc_put_u32(o, CONF_HTTP);
		ipc_put_str(o, "");
		ipc_put_bytes(o, "", 0);
		ipc_put_str(o, "");
		break;
	case IPC_CONFIG_DONE:
	case IPC_WORKER_READY:
		break;
	case IPC_AUTH_RESULT:
	case IPC_NTLM_RESULT:
	case IPC_GSS_RESULT:
		ipc_put_u32(o, req);
		ipc_put_u32(o, IPC_AUTH_OK);
		ipc_put_u64(o, 42);
		ipc_put_str(o, "alice");
		ipc_put_u32(o, 1000);
		ipc_put_u32(o, 1000);
		if (type != IPC_AUTH_RESULT)
			ipc_put_bytes(o, key16, sizeof key16);
		if (type == IPC_GSS_RESULT)
			ipc_put_bytes(o, "tok", 3);
		break;
	case IPC_SESSION_RESULT:
		ipc_put_u32(o, req);
		ipc_put_i32(o, 0);
		ipc_put_u64(o, 7);
		break;
	case IPC_SPAWN_RESULT:          /* result 0: three descriptors follow */
		ipc_put_u32(o, req);
		ipc_put_i32(o, 0);
		ipc_put_u32(o, 4242);
		break;
	case IPC_NTLM_CHALLENGE_RESULT:
		ipc_put_u32(o, req);
		ipc_put_bytes(o, ch8, sizeof ch8);
		break;
	case IPC_SESSION_KILLED:
	case IPC_LOGIN_RELEASE:
	case IPC_SESSION_CLOSE:
		ipc_put_u64(o, 0x7777);          /* nobody's */
		break;
	case IPC_CHILD_EXIT:
		ipc_put_u64(o, 0x7777);
		ipc_put_u32(o, 4242);
		ipc_put_i32(o, 0);
		break;
	case IPC_AUTH_PASSWORD:
		ipc_put_u32(o, req);
		ipc_put_str(o, "alice");
		ipc_put_str(o, "secret");
		ipc_put_str(o, "127.0.0.1");
		break;
	case IPC_SESSION_OPEN:
		ipc_put_u32(o, req);
		ipc_put_u64(o, 42);
		ipc_put_str(o, "11111111-2222-3333-4444-555555555555");
		ipc_put_str(o, "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd");
		ipc_put_str(o, "127.0.0.1");
		break;
	case IPC_SPAWN:
		ipc_put_u32(o, req);
		ipc_put_u64(o, 42);
		ipc_put_u64(o, 7);
		ipc_put_u32(o, 0);
		ipc_put_str(o, "/tmp");
		ipc_put_u32(o, 2);
		ipc_put_str(o, "/bin/echo");
		ipc_put_str(o, "hi");
		ipc_put_u32(o, 1);
		ipc_put_str(o, "A=b");
		break;
	case IPC_SIGNAL:
		ipc_put_u64(o, 0x7777);
		ipc_put_u32(o, 4242);
		ipc_put_u32(o, SIGINT);
		break;
	case IPC_NTLM_VERIFY:
		ipc_put_u32(o, req);
		ipc_put_str(o, "alice");
		ipc_put_str(o, "DOM");
		ipc_put_bytes(o, ch8, sizeof ch8);
		ipc_put_bytes(o, key16, sizeof key16);
		ipc_put_bytes(o, "", 0);
		ipc_put_u32(o, 0);
		ipc_put_str(o, "127.0.0.1");
		break;
	case IPC_GSS_ACCEPT:
		ipc_put_u32(o, req);
		ipc_put_bytes(o, "tok", 3);
		ipc_put_bytes(o, "", 0);
		ipc_put_u32(o, 0);
		ipc_put_str(o, "127.0.0.1");
		break;
	case IPC_CERT_LOGIN:
		ipc_put_u32(o, req);
		ipc_put_u32(o, 1);
		ipc_put_bytes(o, "der", 3);
		ipc_put_str(o, "127.0.0.1");
		break;
	case IPC_NTLM_CHALLENGE:
		ipc_put_u32(o, req);
		break;
	default:
		o->err = -ENOENT;       /* no sample: the test of this row fails */
		break;
	}
}

static unsigned sample_nfds(uint32_t type)
{
	return type == IPC_LISTENER ? 1 : type == IPC_SPAWN_RESULT ? 3 : 0;
}

/* What a reply's callback read, through mm.c's readers. */
static struct {
	int calls, reads_ok;
	struct mm_login login;
	char user[32];
	int32_t result;
	uint32_t pid;
	uint64_t session;
	size_t chl;
} got;

static void on_test_reply(void *ctx, struct ipc_msg *m)
{
	uint32_t type = (uint32_t)(uintptr_t)ctx;
	const unsigned char *ch;
	int fds[3];
	bool ok = false;

	got.calls++;
	if (!m)
		return;
	switch (type) {
	case IPC_AUTH_PASSWORD:
	case IPC_NTLM_VERIFY:
	case IPC_GSS_ACCEPT:
		ok = mm_read_login(m, &got.login);
		snprintf(got.user, sizeof got.user, "%s", ok ? got.login.user : "");
		break;
	case IPC_NTLM_CHALLENGE:
		ok = mm_read_challenge(m, &ch, &got.chl);
		break;
	case IPC_SESSION_OPEN:
		ok = mm_read_session(m, &got.result, &got.session);
		break;
	case IPC_SPAWN:
		ok = mm_read_spawn(m, &got.result, &got.pid, fds);
		if (ok)
			for (int i = 0; i < 3; i++)
				close_safe(&fds[i]);
		break;
	}
	got.reads_ok += ok;
}

/* The request a reply type answers, made for real through mm.c (there is no
 * channel, so nothing is sent), so that the reply finds a call waiting. */
static uint32_t pending_call(uint32_t reply_type)
{
	static char *argv[] = { "x" };
	static const unsigned char der[8] = { 1 };
	struct mm_ntlm_verify q = { .user = "a", .domain = "", .challenge = der, .nt = der,
	    .nt_len = 1, .remote = "" };

	switch (reply_type) {
	case IPC_AUTH_RESULT:
		return mm_auth_password("alice", "pw", "", on_test_reply, NULL,
		    (void *)(uintptr_t)IPC_AUTH_PASSWORD);
	case IPC_NTLM_RESULT:
		return mm_ntlm_verify(&q, on_test_reply, (void *)(uintptr_t)IPC_NTLM_VERIFY);
	case IPC_GSS_RESULT:
		return mm_gss_accept(der, 1, NULL, 0, false, "", on_test_reply,
		    (void *)(uintptr_t)IPC_GSS_ACCEPT);
	case IPC_NTLM_CHALLENGE_RESULT:
		return mm_ntlm_challenge(on_test_reply, (void *)(uintptr_t)IPC_NTLM_CHALLENGE);
	case IPC_SESSION_RESULT:
		return mm_session_open(42, "id", "uri", "", on_test_reply,
		    (void *)(uintptr_t)IPC_SESSION_OPEN);
	case IPC_SPAWN_RESULT:
		return mm_spawn(42, 7, 0, "", 1, argv, 0, NULL, on_test_reply,
		    (void *)(uintptr_t)IPC_SPAWN);
	}
	return 0;
}

static bool is_reply(uint32_t type)
{
	return type == IPC_AUTH_RESULT || type == IPC_NTLM_RESULT || type == IPC_GSS_RESULT ||
	    type == IPC_NTLM_CHALLENGE_RESULT || type == IPC_SESSION_RESULT ||
	    type == IPC_SPAWN_RESULT;
}

/*
 * Dispatch the sample of type through a table, cut to len bytes (len past
 * the message adds that many stray bytes), with nfds descriptors attached.
 */
static int table_feed(const struct ipc_handler *t, size_t n, unsigned state, uint32_t type,
    size_t len, unsigned nfds, bool *bad)
{
	struct ipc_out o;
	struct ipc_msg m;
	unsigned char *data;
	uint32_t req = is_reply(type) && t == net_ipc_handlers ? pending_call(type) : 1;
	int r, p[2];

	sample_build(type, req, &o);
	if (o.err) {
		ipc_out_free(&o);
		return -ENOENT;
	}
	data = xcalloc(1, len > o.b.len ? len : o.b.len);
	memcpy(data, o.b.data, o.b.len);
	ipc_out_free(&o);
	memset(&m, 0, sizeof m);
	for (size_t i = 0; i < IPC_MAX_FDS; i++)
		m.fds[i] = -1;
	if (nfds && pipe(p) == 0) {
		for (unsigned i = 0; i < nfds && i < IPC_MAX_FDS; i++)
			m.fds[m.nfds++] = dup(p[i % 2]);
		close(p[0]);
		close(p[1]);
	}
	m.data = data;
	m.len = len;
	m.type = ipc_u32(&m);
	r = ipc_dispatch(t, n, state, &m);
	*bad = m.bad;
	close_msg_fds(&m);
	free(data);
	if (req > 1 && mm_pending(req)) {
		/* The reply was refused before it found its call: answer it whole. */
		mm_cancel(req);
		sample_build(type, req, &o);
		memset(&m, 0, sizeof m);
		m.data = o.b.data;
		m.len = o.b.len;
		m.type = ipc_u32(&m);
		mm_dispatch_reply(&m);
		CHECK(!mm_pending(req));
		ipc_out_free(&o);
	}
	return r;
}

static size_t sample_len(uint32_t type)
{
	struct ipc_out o;
	size_t n;

	sample_build(type, 1, &o);
	n = o.err ? 0 : o.b.len;
	ipc_out_free(&o);
	return n;
}

/* Refusals are logged, hundreds of them here: keep stderr for the rest, but
 * let a sanitizer's report through. */
static int quiet_fd = -1;

static void quiet(bool on)
{
	int null;

	fflush(stderr);
	if (on && quiet_fd < 0) {
		null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		quiet_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 10);
		if (null >= 0 && quiet_fd >= 0)
			dup2(null, STDERR_FILENO);
		close_safe(&null);
#ifdef __SANITIZE_ADDRESS__
		if (quiet_fd >= 0)
			__sanitizer_set_report_fd((void *)(intptr_t)quiet_fd);
#endif
	} else if (!on && quiet_fd >= 0) {
		dup2(quiet_fd, STDERR_FILENO);
#ifdef __SANITIZE_ADDRESS__
		__sanitizer_set_report_fd((void *)(intptr_t)STDERR_FILENO);
#endif
		close_safe(&quiet_fd);
	}
}

static void table_check(const struct ipc_handler *t, size_t n, enum ipc_sender from,
    unsigned all_states)
{
	bool bad, failed_before = cur_failed;

	for (size_t i = 0; i < n; i++) {
		const struct ipc_handler *h = &t[i];
		size_t len = sample_len(h->type);
		unsigned nfds = sample_nfds(h->type), ok_state = h->states & -h->states;

		cur_failed = false;
		CHECK(h->from == from && ipc_type_sender(h->type) == from);
		for (size_t j = 0; j < i; j++)
			CHECK(t[j].type != h->type);
		if (!CHECK(len >= 4))   /* a row without a sample */
			continue;
		CHECK(ok_state && !(h->states & ~all_states));
		/* Every state the row does not list refuses even the well-formed message. */
		for (unsigned st = 1; st & all_states; st <<= 1)
			if (!(h->states & st)) {
				CHECK(table_feed(t, n, st, h->type, len, nfds, &bad) == -EPERM);
				CHECK(bad);
			}
		/* Cut anywhere, or missing its descriptors: malformed. */
		for (size_t cut = 4; cut < len; cut++) {
			CHECK(table_feed(t, n, ok_state, h->type, cut, nfds, &bad) == -EBADMSG);
			CHECK(bad);
		}
		if (nfds) {
			CHECK(table_feed(t, n, ok_state, h->type, len, 0, &bad) == -EBADMSG);
			CHECK(bad);
		}
		/* A stray byte or descriptor: malformed. */
		CHECK(table_feed(t, n, ok_state, h->type, len + 1, nfds, &bad) == -EBADMSG);
		CHECK(bad);
		CHECK(table_feed(t, n, ok_state, h->type, len, nfds + 1, &bad) == -EBADMSG);
		CHECK(bad);
		if (cur_failed)
			printf("  (in the row of %s)\n", h->name);
		failed_before |= cur_failed;
	}
	cur_failed = failed_before;
	/* Types the peer may not send, or that do not exist. */
	for (uint32_t type = 0; type < 256; type++) {
		bool listed = false;
		struct ipc_msg m = { .type = type };

		for (size_t i = 0; i < n; i++)
			listed |= t[i].type == type;
		if (listed)
			continue;
		CHECK(ipc_dispatch(t, n, all_states, &m) == -EBADMSG);
		CHECK(m.bad);
	}
}

static void test_ipc_table_monitor(void)
{
	bool bad;

	quiet(true);
	table_check(mon_ipc_handlers, mon_ipc_n_handlers, IPC_FROM_WORKER, MON_W_ALL);
	/* The worker's state as the monitor sees it. */
	CHECK(mon_worker_state(0, false) == 0);
	CHECK(mon_worker_state(1, false) == MON_W_STARTING);
	CHECK(mon_worker_state(0, true) == MON_W_SERVING);
	CHECK(mon_worker_state(2, true) == MON_W_RELOADING);
	/* Nothing is accepted from a worker that was never configured. */
	CHECK(table_feed(mon_ipc_handlers, mon_ipc_n_handlers, 0, IPC_LOGIN_RELEASE,
	    sample_len(IPC_LOGIN_RELEASE), 0, &bad) == -EPERM);
	/* A login request before the worker has listeners, or a second READY: refused. */
	CHECK(table_feed(mon_ipc_handlers, mon_ipc_n_handlers, MON_W_STARTING, IPC_AUTH_PASSWORD,
	    sample_len(IPC_AUTH_PASSWORD), 0, &bad) == -EPERM);
	CHECK(table_feed(mon_ipc_handlers, mon_ipc_n_handlers, MON_W_SERVING, IPC_WORKER_READY,
	    4, 0, &bad) == -EPERM);
	/* Well-formed notices about what nobody owns are accepted and change nothing. */
	CHECK(table_feed(mon_ipc_handlers, mon_ipc_n_handlers, MON_W_SERVING, IPC_LOGIN_RELEASE,
	    sample_len(IPC_LOGIN_RELEASE), 0, &bad) == 0 && !bad);
	CHECK(table_feed(mon_ipc_handlers, mon_ipc_n_handlers, MON_W_RELOADING, IPC_SIGNAL,
	    sample_len(IPC_SIGNAL), 0, &bad) == 0 && !bad);
	CHECK(table_feed(mon_ipc_handlers, mon_ipc_n_handlers, MON_W_SERVING, IPC_SESSION_CLOSE,
	    sample_len(IPC_SESSION_CLOSE), 0, &bad) == 0 && !bad);
	quiet(false);
}

static void test_ipc_table_worker(void)
{
	bool bad;
	uint32_t types[] = { IPC_AUTH_RESULT, IPC_NTLM_RESULT, IPC_GSS_RESULT,
	    IPC_NTLM_CHALLENGE_RESULT, IPC_SESSION_RESULT, IPC_SPAWN_RESULT };

	quiet(true);
	table_check(net_ipc_handlers, net_ipc_n_handlers, IPC_FROM_MONITOR, NET_ST_ALL);
	/* Each reply reaches the call that asked, read whole by mm.c. */
	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		memset(&got, 0, sizeof got);
		CHECK(table_feed(net_ipc_handlers, net_ipc_n_handlers, NET_ST_SERVING, types[i],
		    sample_len(types[i]), sample_nfds(types[i]), &bad) == 0 && !bad);
		CHECK(got.calls == 1 && got.reads_ok == 1);
	}
	memset(&got, 0, sizeof got);
	table_feed(net_ipc_handlers, net_ipc_n_handlers, NET_ST_SERVING, IPC_GSS_RESULT,
	    sample_len(IPC_GSS_RESULT), 0, &bad);
	CHECK_STR(got.user, "alice");
	CHECK(got.login.login == 42 && got.login.key_len == 16 && got.login.token_len == 3);
	/* A reply that answers no call is refused. */
	{
		struct ipc_out o;
		struct ipc_msg m;

		sample_build(IPC_AUTH_RESULT, 0xdead, &o);
		memset(&m, 0, sizeof m);
		m.data = o.b.data;
		m.len = o.b.len;
		m.type = ipc_u32(&m);
		CHECK(ipc_dispatch(net_ipc_handlers, net_ipc_n_handlers, NET_ST_SERVING, &m) ==
		    -EBADMSG);
		ipc_out_free(&o);
	}
	/* A configuration starts staging; a listener outside of one is refused. */
	CHECK(net_ipc_state() == NET_ST_NEW);
	CHECK(table_feed(net_ipc_handlers, net_ipc_n_handlers, net_ipc_state(), IPC_CONFIG,
	    sample_len(IPC_CONFIG), 0, &bad) == 0 && !bad);
	CHECK(net_ipc_state() == NET_ST_STAGING);
	free(NET.staged_conf);
	NET.staged_conf = NULL;
	NET.staging = false;
	CHECK(table_feed(net_ipc_handlers, net_ipc_n_handlers, net_ipc_state(), IPC_LISTENER,
	    sample_len(IPC_LISTENER), 1, &bad) == -EPERM);
	/* A child may outlive its worker: its exit is accepted in every state. */
	CHECK(table_feed(net_ipc_handlers, net_ipc_n_handlers, NET_ST_NEW, IPC_CHILD_EXIT,
	    sample_len(IPC_CHILD_EXIT), 0, &bad) == 0 && !bad);
	quiet(false);
}

/* The dispatcher itself, on a table of its own. */
static int toy_calls;
static void toy_reads_nothing(struct ipc_msg *m)
{
	(void)m;
	toy_calls++;
}

static void test_ipc_dispatch_rules(void)
{
	const struct ipc_handler t[] = {
		{ IPC_WORKER_READY, "READY", IPC_FROM_WORKER, 1, toy_reads_nothing },
		{ IPC_CONFIG, "CONFIG", IPC_FROM_WORKER, 1, toy_reads_nothing },   /* wrong sender */
	};
	unsigned char b[8] = { 0 };
	struct ipc_msg m = { .data = b, .len = 4, .off = 4, .type = IPC_WORKER_READY };

	toy_calls = 0;
	quiet(true);
	CHECK(ipc_dispatch(t, 2, 1, &m) == 0 && !m.bad && toy_calls == 1);
	/* A handler that forgets ipc_end still cannot let a stray byte through. */
	m = (struct ipc_msg){ .data = b, .len = 5, .off = 4, .type = IPC_WORKER_READY };
	CHECK(ipc_dispatch(t, 2, 1, &m) == -EBADMSG && m.bad);
	m = (struct ipc_msg){ .data = b, .len = 4, .off = 4, .type = IPC_WORKER_READY };
	CHECK(ipc_dispatch(t, 2, 2, &m) == -EPERM && m.bad && toy_calls == 2);
	m = (struct ipc_msg){ .data = b, .len = 4, .off = 4, .type = IPC_CONFIG };
	CHECK(ipc_dispatch(t, 2, 1, &m) == -EPROTO && m.bad && toy_calls == 2);
	quiet(false);
}

#define IPC_TABLE_TESTS \
	X(test_ipc_dispatch_rules) \
	X(test_ipc_table_monitor) \
	X(test_ipc_table_worker)
