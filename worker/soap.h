/*
 * soap.h - WS-Management SOAP envelopes: parse requests, write replies and
 * faults (worker).
 *
 * Parsing is by namespace URI, never by prefix (pywinrm says env:, pypsrp
 * says s:).  The XML parser refuses any DTD, never expands entities, never
 * touches the network and stops past SOAP_MAX_DEPTH elements.
 */
#ifndef WINRMD_SOAP_H
#define WINRMD_SOAP_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>
#include <libxml/xmlwriter.h>

#include "wlimits.h"
#include "util.h"

#define NS_SOAP  "http://www.w3.org/2003/05/soap-envelope"
#define NS_WSA   "http://schemas.xmlsoap.org/ws/2004/08/addressing"
#define NS_WSMAN "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
#define NS_WSMV  "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
#define NS_RSP   "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
#define NS_WST   "http://schemas.xmlsoap.org/ws/2004/09/transfer"
#define NS_WSEN  "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
#define NS_WSE   "http://schemas.xmlsoap.org/ws/2004/08/eventing"
#define NS_WSMID "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"
#define NS_CFG   "http://schemas.microsoft.com/wbem/wsman/1/config"
#define NS_FAULT "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
#define NS_PSH   "http://schemas.microsoft.com/powershell"
#define NS_XSI   "http://www.w3.org/2001/XMLSchema-instance"

#define WSA_ANONYMOUS "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

/* The faults winrmd sends; soap.c holds Windows' codes and texts for each. */
enum soap_fault {
	SF_ACTION_NOT_SUPPORTED,    /* arg: action */
	SF_RESOURCE_NOT_FOUND,      /* arg: resource URI */
	SF_SHELL_NOT_FOUND,         /* arg: ShellId */
	SF_COMMAND_NOT_FOUND,
	SF_NO_SHELLID_SELECTOR,
	SF_ACCESS_DENIED,
	SF_TIMED_OUT,
	SF_RESPONSE_TOO_LARGE,      /* arg: "N) exceeds ... (M" built by caller */
	SF_MIN_ENVELOPE,
	SF_SCHEMA_VALIDATION,       /* arg: detail sentence */
	SF_INVALID_XML,             /* arg: detail sentence */
	SF_INVALID_HEADER,          /* arg: detail sentence */
	SF_HEADER_REQUIRED,         /* arg: header name */
	SF_INVALID_TIMEOUT,         /* arg: the value */
	SF_INVALID_OPTIONS,         /* arg: detail sentence */
	SF_QUOTA_SHELLS,            /* arg: the limit */
	SF_QUOTA_OPERATIONS,        /* arg: the limit */
	SF_QUOTA_USERS,
	SF_SHELLS_NOT_ALLOWED,
	SF_SHELL_ID_CONFLICT,
	SF_SHELL_ID_INVALID,
	SF_COMMAND_ID_CONFLICT,
	SF_COMMAND_ID_INVALID,
	SF_INVALID_STREAM,          /* arg: stream name */
	SF_IDLE_TIMEOUT_RANGE,
	SF_SHELL_DISCONNECTED,
	SF_SHELL_OTHER_CLIENT,
	SF_DISCONNECT_NOT_SUPPORTED,
	SF_PROTOCOL_VERSION_MISSING,
	SF_QUOTA_PSRP_OBJECT,       /* arg: detail sentence */
	SF_QUOTA_PSRP_DATA,         /* arg: detail sentence */
	SF_PROCESS_FAILED,          /* arg: detail sentence */
	SF_INTERNAL_ERROR,          /* arg: detail sentence */
	SF__MAX
};

struct soap_kv {
	char *name;
	char *value;
	bool must_comply;
};

struct soap_req {
	xmlDocPtr doc;
	xmlNodePtr header, body;
	char *action, *to, *message_id, *reply_to, *resource_uri;
	char *locale, *data_locale, *session_id;
	struct soap_kv selectors[SOAP_MAX_SELECTORS];
	size_t n_selectors;
	struct soap_kv options[SOAP_MAX_OPTIONS];
	size_t n_options;
	long long timeout_ms;           /* OperationTimeout, -1 when absent */
	long long max_envelope;         /* MaxEnvelopeSize, -1 when absent */
	bool compression_xpress;        /* rsp:CompressionType xpress */
};

/* Details of a parse failure, for the fault reply. */
struct soap_error {
	enum soap_fault fault;
	char arg[256];
};

void soap_init(void);
int soap_parse(const void *data, size_t len, struct soap_req *req, struct soap_error *err);
void soap_req_free(struct soap_req *req);

const char *soap_selector(const struct soap_req *req, const char *name);
const char *soap_option(const struct soap_req *req, const char *name);
bool soap_option_bool(const struct soap_req *req, const char *name, bool dflt);

/* Element helpers for endpoint code. */
bool soap_is(const xmlNode *n, const char *ns, const char *name);
xmlNodePtr soap_child(const xmlNode *parent, const char *ns, const char *name);
xmlNodePtr soap_next(const xmlNode *after, const char *ns, const char *name);
/* Text content, trimmed, malloc'ed (never NULL). */
char *soap_text(const xmlNode *n);
const char *soap_attr(const xmlNode *n, const char *name, char *buf, size_t len);
/* Parse an xs:duration ("PT20S", "PT0.5S", "P1DT2H") into ms; -EINVAL if invalid. */
long long soap_duration_ms(const char *s);

/*
 * Reply construction.  soap_reply_begin writes the envelope, the header
 * (Action, MessageID, To, RelatesTo = the request's MessageID verbatim) and
 * opens s:Body; the caller writes the body with the xmlTextWriter; then
 * soap_reply_end closes and returns the serialised bytes.
 */
struct soap_reply {
	xmlBufferPtr xbuf;
	xmlTextWriterPtr w;
};
int soap_reply_begin(struct soap_reply *r, const struct soap_req *req, const char *action);
int soap_reply_end(struct soap_reply *r, struct buf *out);
void soap_reply_abort(struct soap_reply *r);

/* Write elements: prefix must be one declared on the envelope (s a x e n w p rsp cfg). */
void soap_w_start(struct soap_reply *r, const char *qname);
void soap_w_end(struct soap_reply *r);
void soap_w_attr(struct soap_reply *r, const char *name, const char *value);
void soap_w_text(struct soap_reply *r, const char *text);
void soap_w_elem(struct soap_reply *r, const char *qname, const char *text);
void soap_w_raw(struct soap_reply *r, const char *xml);

/* A complete fault envelope; req may be NULL (unparsable request). */
int soap_fault(const struct soap_req *req, enum soap_fault f, const char *arg,
    const char *machine, struct buf *out, int *http_status);
unsigned long soap_fault_code(enum soap_fault f);

#endif
