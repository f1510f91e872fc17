/*
 * wsman.c - from an authenticated HTTP request to an endpoint (worker).
 *
 * The only path to an endpoint goes through wsman_handle, and it refuses
 * anything but Identify when the request carries no verified principal.
 */
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "log.h"
#include "net_state.h"
#include "wlimits.h"
#include "wsman.h"

static void call_free(struct wsman_call *c)
{
	if (c->hr) {
		c->hr->cancel = NULL;
		c->hr->cancel_data = NULL;
	}
	soap_req_free(&c->req);
	free(c->user);
	free(c);
}

static void on_http_gone(struct http_req *r, void *data)
{
	struct wsman_call *c = data;
	(void)r;

	c->hr = NULL;
	if (c->cancel)
		c->cancel(c);   /* the endpoint lets go of c and calls wsman_fault(c) or frees */
	else
		call_free(c);
}

bool wsman_action_is(const struct wsman_call *c, const char *action)
{
	return c->req.action && !strcmp(c->req.action, action);
}

static void set_result(struct http_req *r, const char *fmt, unsigned long v)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(r->result, sizeof r->result, fmt, v);
#pragma GCC diagnostic pop
}

void wsman_fault(struct wsman_call *c, enum soap_fault f, const char *arg)
{
	struct buf out;
	int status;

	if (c->hr) {
		buf_init(&out, 0);
		soap_fault(&c->req, f, arg, c->machine, &out, &status);
		set_result(c->hr, "fault:%lu", soap_fault_code(f));
		http_respond(c->hr, status, &out);
	}
	call_free(c);
}

void wsman_reply(struct wsman_call *c, struct soap_reply *rep)
{
	struct buf out;

	buf_init(&out, 0);
	if (soap_reply_end(rep, &out) < 0) {
		buf_free(&out);
		wsman_fault(c, SF_INTERNAL_ERROR, "The reply could not be built. ");
		return;
	}
	wsman_reply_buf(c, &out);
}

void wsman_reply_buf(struct wsman_call *c, struct buf *out)
{
	if (out->len > c->max_envelope) {
		char arg[128];
		snprintf(arg, sizeof arg, "(%zu) exceeds the maximum envelope size that is allowed (%zu)",
		    out->len, c->max_envelope);
		buf_free(out);
		wsman_fault(c, SF_RESPONSE_TOO_LARGE, arg);
		return;
	}
	if (c->hr)
		http_respond(c->hr, MHD_HTTP_OK, out);
	else
		buf_free(out);
	call_free(c);
}

void wsman_reject_forbidden(struct http_req *r)
{
	struct soap_req req;
	struct soap_error err;
	struct buf out;
	int status;
	char machine[256];

	/* The password was right, so the envelope may be read for its MessageID. */
	buf_init(&out, 0);
	http_machine(r, machine, sizeof machine);
	soap_parse(r->body.data, r->body.len, &req, &err);
	if (req.action)
		snprintf(r->action, sizeof r->action, "%s", req.action);
	soap_fault(&req, SF_ACCESS_DENIED, NULL, machine, &out, &status);
	soap_req_free(&req);
	snprintf(r->result, sizeof r->result, "access-denied");
	http_respond(r, status, &out);
}

static struct {
	const struct wsman_endpoint *eps[WSMAN_MAX_ENDPOINTS];
	size_t n;
	wsman_action_fn identify;
} REG;

void wsman_register(const struct wsman_endpoint *ep)
{
	if (REG.n == WSMAN_MAX_ENDPOINTS)
		fatal("too many endpoints (raise WSMAN_MAX_ENDPOINTS)");
	REG.eps[REG.n++] = ep;
}

void wsman_register_identify(wsman_action_fn fn)
{
	REG.identify = fn;
}

static void dispatch(struct wsman_call *c)
{
	const char *uri = c->req.resource_uri;

	if (!uri || !*uri) {
		wsman_fault(c, SF_HEADER_REQUIRED, "ResourceURI");
		return;
	}
	for (size_t i = 0; i < REG.n; i++) {
		const struct wsman_endpoint *ep = REG.eps[i];
		if (!ep->handles(uri))
			continue;
		for (const struct wsman_action *a = ep->actions; a->action; a++)
			if (wsman_action_is(c, a->action)) {
				a->fn(c);
				return;
			}
		if (ep->unknown)
			ep->unknown(c);
		else
			wsman_fault(c, SF_ACTION_NOT_SUPPORTED, c->req.action);
		return;
	}
	wsman_fault(c, SF_RESOURCE_NOT_FOUND, uri);
}

void wsman_handle(struct http_req *r)
{
	struct wsman_call *c = xcalloc(1, sizeof *c);
	struct soap_error err;
	unsigned long long maxenv = NET.conf.service.max_envelope_kb * 1024;
	int rc;

	c->hr = r;
	c->https = http_is_https(r);
	http_machine(r, c->machine, sizeof c->machine);
	snprintf(c->remote, sizeof c->remote, "%s", r->conn->remote);
	c->authenticated = r->authenticated;
	if (r->authenticated) {
		c->user = xstrdup(r->conn->user);
		c->uid = r->conn->uid;
		c->login_id = r->conn->login_id;
	}
	r->cancel = on_http_gone;
	r->cancel_data = c;

	rc = soap_parse(r->body.data, r->body.len, &c->req, &err);
	if (c->req.action)
		snprintf(r->action, sizeof r->action, "%s", c->req.action);
	if (c->req.resource_uri)
		snprintf(r->resource, sizeof r->resource, "%s", c->req.resource_uri);
	c->max_envelope = (size_t)maxenv;
	if (c->req.max_envelope > 0 && (unsigned long long)c->req.max_envelope < maxenv)
		c->max_envelope = (size_t)c->req.max_envelope;
	c->timeout_ms = NET.conf.service.max_timeout_ms;
	if (c->req.timeout_ms >= 0 && (unsigned long long)c->req.timeout_ms < c->timeout_ms)
		c->timeout_ms = (uint64_t)c->req.timeout_ms;

	/* Identify is recognised by its body alone, like Windows does. */
	if (c->req.body && soap_child(c->req.body, NS_WSMID, "Identify") && REG.identify) {
		snprintf(r->action, sizeof r->action, "Identify");
		REG.identify(c);
		return;
	}
	if (!r->authenticated) {
		/* Fail closed (CVE-2021-38647): nothing else runs without a principal. */
		snprintf(r->result, sizeof r->result, "no-authorization");
		r->cancel = NULL;
		call_free(c);
		http_respond_challenge(r);
		return;
	}
	if (rc < 0) {
		log_debug("rejecting request from %s: fault %lu", r->conn->remote,
		    soap_fault_code(err.fault));
		wsman_fault(c, err.fault, err.arg);
		return;
	}
	dispatch(c);
}
