/*
 * park.c - Receives that wait for news (worker).
 *
 * A Receive with nothing to say is parked: its HTTP request stays suspended
 * until its owner (a WinRS command, a PSRP pool or pipeline) has output or
 * an end, until OperationTimeout, or until the client goes away.  One
 * Receive waits per owner; a newer one ends the older as a timeout.
 */
#include <string.h>

#include <systemd/sd-event.h>

#include "http.h"
#include "log.h"
#include "net_state.h"
#include "shell_int.h"
#include "wsman.h"

void park_init(struct park *p, void *owner, bool (*has_news)(void *), void (*answer)(void *,
    struct wsman_call *))
{
	memset(p, 0, sizeof *p);
	p->owner = owner;
	p->has_news = has_news;
	p->answer = answer;
}

/* Detach the parked call without answering it. */
struct wsman_call *park_release(struct park *p)
{
	struct wsman_call *c = p->call;

	p->timer = sd_event_source_disable_unref(p->timer);
	if (c)
		c->cancel = NULL;
	p->call = NULL;
	return c;
}

void park_fail(struct park *p, enum soap_fault f, const char *arg)
{
	struct wsman_call *c = park_release(p);

	if (c)
		wsman_fault(c, f, arg);
}

void park_wake(struct park *p)
{
	struct wsman_call *c = p->call;

	if (!c || !p->has_news(p->owner))
		return;
	park_release(p);
	if (c->hr && !http_client_alive(c->hr)) {
		/* The client left: keep the output for its next Receive. */
		wsman_fault(c, SF_TIMED_OUT, NULL);
		return;
	}
	p->answer(p->owner, c);
}

static int on_park_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s; (void)usec;
	park_fail(userdata, SF_TIMED_OUT, NULL);
	return 0;
}

static void park_cancel(struct wsman_call *c)
{
	struct park *p = c->data;

	if (p->call == c)
		park_release(p);
	wsman_fault(c, SF_TIMED_OUT, NULL);     /* nobody hears it: frees c */
}

void park_call(struct park *p, struct wsman_call *c)
{
	/* One Receive at a time: an older one ends now, as a timeout. */
	park_fail(p, SF_TIMED_OUT, NULL);
	p->call = c;
	c->data = p;
	c->cancel = park_cancel;
	if (sd_event_add_time_relative(NET.ev, &p->timer, CLOCK_MONOTONIC, c->timeout_ms * 1000ULL,
	    1000, on_park_timeout, p) < 0) {
		log_err("cannot arm a Receive's timeout: answering it now");
		park_fail(p, SF_TIMED_OUT, NULL);
		return;
	}
	sd_event_source_set_description(p->timer, "receive-timeout");
}

/* The sweep: a parked Receive whose client left is dropped now, not at its timeout. */
void park_check_client(struct park *p)
{
	if (p->call && p->call->hr && !http_client_alive(p->call->hr))
		park_fail(p, SF_TIMED_OUT, NULL);
}
