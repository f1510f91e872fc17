/*
 * wsman.h - dispatch of authenticated SOAP requests to endpoints (worker).
 *
 * An endpoint receives a wsman_call, which it must finish exactly once with
 * wsman_reply or wsman_fault, now or later.  If it finishes later it sets
 * cancel, which runs should the HTTP request vanish first.
 */
#ifndef WINRMD_WSMAN_H
#define WINRMD_WSMAN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "http.h"
#include "soap.h"

#define URI_CONFIG   "http://schemas.microsoft.com/wbem/wsman/1/config"
#define URI_SHELL    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
#define URI_SHELL_CMD URI_SHELL "/cmd"
#define URI_PSH_PREFIX "http://schemas.microsoft.com/powershell/"

#define ACT_GET      "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
#define ACT_CREATE   "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
#define ACT_DELETE   "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
#define ACT_PUT      "http://schemas.xmlsoap.org/ws/2004/09/transfer/Put"
#define ACT_ENUMERATE "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate"
#define ACT_PULL     "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull"
#define ACT_RELEASE  "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release"
#define ACT_SHELL    URI_SHELL "/"
#define ACT_COMMAND  URI_SHELL "/Command"
#define ACT_SEND     URI_SHELL "/Send"
#define ACT_RECEIVE  URI_SHELL "/Receive"
#define ACT_SIGNAL   URI_SHELL "/Signal"
#define ACT_DISCONNECT URI_SHELL "/Disconnect"
#define ACT_RECONNECT URI_SHELL "/Reconnect"
#define ACT_CONNECT  URI_SHELL "/Connect"

struct wsman_call;
typedef void (*wsman_cancel_fn)(struct wsman_call *c);

struct wsman_call {
	struct http_req *hr;            /* NULL once the HTTP request is gone */
	struct soap_req req;
	char machine[256];
	char remote[64];
	char *user;
	uid_t uid;
	uint64_t login_id;
	bool https;
	bool authenticated;             /* only Identify is ever dispatched without */
	size_t max_envelope;            /* the reply must not exceed this */
	uint64_t timeout_ms;            /* OperationTimeout, clamped to MaxTimeoutms */
	wsman_cancel_fn cancel;
	void *data;                     /* endpoint state while pending */
};

/*
 * The endpoint registry.  Each endpoint registers at start which resource
 * URIs it serves and a table of the actions it answers; dispatch takes the
 * first endpoint, in registration order, whose handles() accepts the URI,
 * then the action from its table.  An action not in the table goes to
 * unknown(), or gets ActionNotSupported.  Identify is recognised by its body
 * and answered without a principal, so it has a slot of its own.
 */
typedef void (*wsman_action_fn)(struct wsman_call *c);
struct wsman_action {
	const char *action;
	wsman_action_fn fn;
};
struct wsman_endpoint {
	const char *name;
	bool (*handles)(const char *resource_uri);
	const struct wsman_action *actions;     /* ends with { NULL, NULL } */
	wsman_action_fn unknown;                /* NULL: ActionNotSupported */
};
void wsman_register(const struct wsman_endpoint *ep);
void wsman_register_identify(wsman_action_fn fn);

void wsman_handle(struct http_req *r);
void wsman_reject_forbidden(struct http_req *r);

/* Finish the call (frees it).  wsman_reply checks the reply size itself. */
void wsman_reply(struct wsman_call *c, struct soap_reply *rep);
/* The same with a finished envelope; takes out. */
void wsman_reply_buf(struct wsman_call *c, struct buf *out);
void wsman_fault(struct wsman_call *c, enum soap_fault f, const char *arg);
bool wsman_action_is(const struct wsman_call *c, const char *action);

#endif
