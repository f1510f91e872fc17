/*
 * soap.c - WS-Man envelope parsing and reply/fault writing (worker).
 *
 * libxml2 is driven through a parser context whose SAX table we patch: any
 * DOCTYPE or entity declaration stops the parse (so neither XXE nor billion
 * laughs can even start), and element depth is counted on the way in.  The
 * fault texts are Windows' own, because clients match on codes and Go's
 * client matches on the word "OperationTimeout" in the body.
 *
 * Over 900 lines on purpose: the fault table with Windows' codes and texts
 * is a third of it, and the envelope's reader and writer share the
 * namespace and escaping rules that must agree with each other.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/SAX2.h>

#include "log.h"
#include "soap.h"

/* libxml2 >= 2.13 can refuse external entities itself; older ones rely on the SAX guard. */
#if LIBXML_VERSION >= 21300
#define SOAP_XXE_FLAG XML_PARSE_NO_XXE
#else
#define SOAP_XXE_FLAG 0
#endif

struct fault_def {
	int http;
	const char *code;       /* s:Sender / s:Receiver */
	const char *subcode;
	unsigned long wsman_code;
	const char *reason;
	const char *message;    /* printf format with at most one %s; NULL = reason */
	const char *detail;     /* w:FaultDetail URI or NULL */
	bool addressing;        /* Action is the WS-Addressing fault action */
};

#define FD_URI "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/"
#define R_SELECTORS "The WS-Management service cannot process the request because the request contained invalid selectors for the resource. "
#define R_HEADERS "The WS-Management service cannot process the request. The request contains one or more invalid SOAP headers. "

static const struct fault_def faults[SF__MAX] = {
	[SF_ACTION_NOT_SUPPORTED] = { 500, "s:Sender", "a:ActionNotSupported", 2150858771UL,
		"The WS-Management service does not support the action specified in the request. ",
		"The WS-Management service cannot process the request. The action %s is not supported by this service. ",
		NULL, true },
	[SF_RESOURCE_NOT_FOUND] = { 500, "s:Sender", "w:DestinationUnreachable", 2150858811UL,
		"The WS-Management service cannot process the request. The resource URI was not found in the WS-Management catalog. ",
		"The WS-Management service cannot process the request. The resource URI (%s) was not found in the WS-Management catalog. The catalog contains the metadata that describes resources, or logical endpoints. ",
		FD_URI "InvalidResourceURI", false },
	[SF_SHELL_NOT_FOUND] = { 500, "s:Sender", "w:InvalidSelectors", 2150858843UL, R_SELECTORS,
		"The request for the Windows Remote Shell with ShellId %s failed because the shell was not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. Provide the correct ShellId or create a new shell and retry the operation. ",
		FD_URI "UnexpectedSelectors", false },
	[SF_COMMAND_NOT_FOUND] = { 500, "s:Sender", "w:InvalidSelectors", 2150858843UL, R_SELECTORS,
		"The Windows Remote Shell received a request to perform an operation on a command identifier that does not exist. Either the command has completed execution or the client specified an invalid command identifier. ",
		FD_URI "UnexpectedSelectors", false },
	[SF_NO_SHELLID_SELECTOR] = { 500, "s:Sender", "w:InvalidSelectors", 2150858843UL, R_SELECTORS,
		"The Windows Remote Shell cannot process the request because it requires the following selector: ShellId. Retry with the correct selector. ",
		FD_URI "UnexpectedSelectors", false },
	[SF_ACCESS_DENIED] = { 500, "s:Sender", "w:AccessDenied", 5UL,
		"Access is denied. ", NULL, NULL, false },
	[SF_TIMED_OUT] = { 500, "s:Receiver", "w:TimedOut", 2150858793UL,
		"The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ",
		NULL, NULL, false },
	[SF_RESPONSE_TOO_LARGE] = { 500, "s:Sender", "w:EncodingLimit", 2150858824UL,
		"The response that the WS-Management service computed exceeds the maximum envelope size in the request. ",
		"The WS-Management service cannot process the request. The computed response packet size %s. ",
		FD_URI "MaxEnvelopeSize", false },
	[SF_MIN_ENVELOPE] = { 500, "s:Sender", "w:EncodingLimit", 2150858878UL,
		"The WS-Management service cannot process the request because the envelope size in the request is too small. ",
		NULL, FD_URI "MinimumEnvelopeLimit", false },
	[SF_SCHEMA_VALIDATION] = { 500, "s:Sender", "w:SchemaValidationError", 2150858817UL,
		"The SOAP XML in the message does not match the corresponding XML schema definition. Change the XML and retry. ",
		"%s", NULL, false },
	[SF_INVALID_XML] = { 500, "s:Sender", "w:InternalError", 2150858819UL,
		"The WS-Management service cannot process the request because the XML is invalid. ",
		"%s", FD_URI "Invalid", false },
	[SF_INVALID_HEADER] = { 500, "s:Sender", "a:InvalidMessageInformationHeader", 2150858767UL,
		R_HEADERS, "%s", NULL, true },
	[SF_HEADER_REQUIRED] = { 500, "s:Sender", "a:MessageInformationHeaderRequired", 2150858769UL,
		"The WS-Management service cannot process the request because a required header is missing. ",
		"The WS-Management service cannot process the request. The required SOAP header %s is missing. ",
		NULL, true },
	[SF_INVALID_TIMEOUT] = { 500, "s:Sender", "a:InvalidMessageInformationHeader", 2150858767UL,
		R_HEADERS,
		"The WS-Management service cannot process the request. The XML contains an invalid timeout field in the SOAP header: %s. ",
		NULL, true },
	[SF_INVALID_OPTIONS] = { 500, "s:Sender", "w:InvalidOptions", 2150858809UL,
		"The WS-Management service cannot process the request because the request contained invalid options. ",
		"%s", FD_URI "InvalidValue", false },
	[SF_QUOTA_SHELLS] = { 500, "s:Sender", "w:QuotaLimit", 2150859173UL,
		"The WS-Management service cannot process the request. The maximum number of concurrent shells for this user has been exceeded. Close existing shells or raise the quota for this user. ",
		"The WS-Management service cannot process the request. This user is allowed a maximum number of %s concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. ",
		NULL, false },
	[SF_QUOTA_OPERATIONS] = { 500, "s:Sender", "w:QuotaLimit", 2150859174UL,
		"The WS-Management service cannot process the request. The maximum number of concurrent operations for this user has been exceeded. Close existing operations for this user, or raise the quota for this user. ",
		"The WS-Management service cannot process the request. This user is allowed a maximum number of %s concurrent operations, which has been exceeded. Close existing operations for this user, or raise the quota for this user. ",
		NULL, false },
	[SF_QUOTA_USERS] = { 500, "s:Sender", "w:QuotaLimit", 2150859179UL,
		"The WS-Management service cannot process the request. The maximum number of users executing shell operations has been exceeded. Retry after some time or raise the quota for concurrent shell users. ",
		NULL, NULL, false },
	[SF_SHELLS_NOT_ALLOWED] = { 500, "s:Sender", "w:InternalError", 2150859180UL,
		"The WS-Management service cannot process the request. The service is configured to not accept any remote shell requests. ",
		NULL, NULL, false },
	[SF_SHELL_ID_CONFLICT] = { 500, "s:Sender", "w:AlreadyExists", 2150859223UL,
		"The WinRM service cannot process the request. A resource already exists with the shell ID specified by the client. ",
		NULL, NULL, false },
	[SF_SHELL_ID_INVALID] = { 500, "s:Sender", "w:InvalidParameter", 2150859221UL,
		"The WinRM service cannot process the request because the shell ID specified by the client is not a valid GUID. Provide a valid ID and try again. ",
		NULL, NULL, false },
	[SF_COMMAND_ID_CONFLICT] = { 500, "s:Sender", "w:AlreadyExists", 2150859222UL,
		"The WinRM service cannot process the request. A command already exists with the command ID specified by the client. ",
		NULL, NULL, false },
	[SF_COMMAND_ID_INVALID] = { 500, "s:Sender", "w:InvalidParameter", 2150859220UL,
		"The WinRM service cannot process the request because the command ID specified by the client is not a valid GUID. Modify the request and retry the request. ",
		NULL, NULL, false },
	[SF_INVALID_STREAM] = { 500, "s:Sender", "w:InvalidParameter", 2150859147UL,
		"The parameter is incorrect. ",
		"The Windows Remote Shell cannot process the request because the stream %s is not valid for this shell. ",
		FD_URI "InvalidValue", false },
	[SF_IDLE_TIMEOUT_RANGE] = { 500, "s:Sender", "w:InvalidOptions", 2150859250UL,
		"The WS-Management service cannot process the request. The requested IdleTimeout is outside the allowed range. ",
		NULL, NULL, false },
	[SF_SHELL_DISCONNECTED] = { 500, "s:Sender", "w:InternalError", 2150859204UL,
		"The WinRM service cannot process the request because the WinRS shell instance is currently disconnected. ",
		NULL, NULL, false },
	[SF_SHELL_OTHER_CLIENT] = { 500, "s:Sender", "w:InternalError", 2150859213UL,
		"The WinRM service cannot process the request. The WinRS shell instance is currently connected to a different client. ",
		NULL, NULL, false },
	[SF_DISCONNECT_NOT_SUPPORTED] = { 500, "s:Sender", "w:InternalError", 2150859205UL,
		"The WinRM service cannot process the request. This WinRS shell instance does not support disconnect and reconnect operations because it was created by an older WinRS client or its provider does not support the disconnect operation. ",
		NULL, NULL, false },
	/*
	 * Windows has no WS-Man fault here: its PowerShell plug-in ends the session
	 * with PowerShell's remoting errors 871/872. We refuse the Send with those
	 * codes so the client learns why, and the runspace never sees the data.
	 */
	[SF_QUOTA_PSRP_OBJECT] = { 500, "s:Sender", "w:QuotaLimit", 871UL,
		"The data sent to the PowerShell session exceeds the session configuration's MaxReceivedObjectSizeMB. ",
		"%s", NULL, false },
	[SF_QUOTA_PSRP_DATA] = { 500, "s:Sender", "w:QuotaLimit", 872UL,
		"The data sent to the PowerShell session exceeds the session configuration's MaxReceivedDataSizePerCommandMB. ",
		"%s", NULL, false },
	[SF_PROTOCOL_VERSION_MISSING] = { 500, "s:Receiver", "w:InternalError", 2152991687UL,
		"The WS-Management service cannot process the request. ",
		"The PowerShell plug-in cannot create the shell because the protocolversion option is missing from the request. ",
		NULL, false },
	[SF_PROCESS_FAILED] = { 500, "s:Receiver", "w:InternalError", 2150858883UL,
		"The WS-Management service cannot process the request. ",
		"%s", NULL, false },
	[SF_INTERNAL_ERROR] = { 500, "s:Receiver", "w:InternalError", 2150858883UL,
		"The WS-Management service cannot process the request. ",
		"%s", NULL, false },
};

unsigned long soap_fault_code(enum soap_fault f)
{
	return faults[f].wsman_code;
}

static void envelope_open_init(void);

static void silent_generic(void *ctx, const char *msg, ...)
{
	(void)ctx; (void)msg;
}

void soap_init(void)
{
	xmlInitParser();
	/* libxml2 would print encoding errors to stderr, reachable before login. */
	xmlSetGenericErrorFunc(NULL, silent_generic);
	xmlSetStructuredErrorFunc(NULL, NULL);
	envelope_open_init();
	/* Global belt and braces; the per-context options below do the work. */
	xmlSubstituteEntitiesDefault(0);
	xmlLoadExtDtdDefaultValue = 0;
}

/* ---- parsing ---------------------------------------------------------- */

struct parse_guard {
	int depth;
	bool dtd;               /* a DOCTYPE or entity declaration was seen */
	bool too_deep;
	startElementNsSAX2Func start;
	endElementNsSAX2Func end;
};

static void guard_internal_subset(void *ctx, const xmlChar *name, const xmlChar *eid,
    const xmlChar *sid)
{
	xmlParserCtxtPtr c = ctx;
	struct parse_guard *g = c->_private;
	(void)name; (void)eid; (void)sid;

	g->dtd = true;
	xmlStopParser(c);
}

static void guard_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *pid,
    const xmlChar *sid, xmlChar *content)
{
	xmlParserCtxtPtr c = ctx;
	struct parse_guard *g = c->_private;
	(void)name; (void)type; (void)pid; (void)sid; (void)content;

	g->dtd = true;
	xmlStopParser(c);
}

static xmlEntityPtr guard_get_entity(void *ctx, const xmlChar *name)
{
	/* Only the five predefined entities exist in a SOAP message. */
	(void)ctx;
	return xmlGetPredefinedEntity(name);
}

static void guard_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri, int nb_ns, const xmlChar **ns, int nb_attr, int nb_def,
    const xmlChar **attrs)
{
	xmlParserCtxtPtr c = ctx;
	struct parse_guard *g = c->_private;

	if (++g->depth > SOAP_MAX_DEPTH) {
		g->too_deep = true;
		xmlStopParser(c);
		return;
	}
	g->start(ctx, localname, prefix, uri, nb_ns, ns, nb_attr, nb_def, attrs);
}

static void guard_end(void *ctx, const xmlChar *localname, const xmlChar *prefix,
    const xmlChar *uri)
{
	xmlParserCtxtPtr c = ctx;
	struct parse_guard *g = c->_private;

	g->depth--;
	g->end(ctx, localname, prefix, uri);
}

static void silent_error(void *ctx, const char *msg, ...)
{
	(void)ctx; (void)msg;
}

bool soap_is(const xmlNode *n, const char *ns, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
	    !strcmp((const char *)n->name, name) && !strcmp((const char *)n->ns->href, ns);
}

xmlNodePtr soap_next(const xmlNode *after, const char *ns, const char *name)
{
	for (xmlNodePtr n = after ? after->next : NULL; n; n = n->next)
		if (soap_is(n, ns, name))
			return n;
	return NULL;
}

xmlNodePtr soap_child(const xmlNode *parent, const char *ns, const char *name)
{
	if (!parent)
		return NULL;
	for (xmlNodePtr n = parent->children; n; n = n->next)
		if (soap_is(n, ns, name))
			return n;
	return NULL;
}

char *soap_text(const xmlNode *n)
{
	xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
	char *s, *trim;

	if (!t)
		return xstrdup("");
	trim = str_trim((char *)t);
	s = xstrdup(trim);
	xmlFree(t);
	return s;
}

const char *soap_attr(const xmlNode *n, const char *name, char *buf, size_t len)
{
	xmlChar *v;

	if (!n)
		return NULL;
	/* Attributes such as Name=, CommandId= are unqualified; accept any namespace. */
	v = xmlGetProp(n, (const xmlChar *)name);
	if (!v)
		return NULL;
	snprintf(buf, len, "%s", (const char *)v);
	xmlFree(v);
	return buf;
}

long long soap_duration_ms(const char *s)
{
	long double total = 0;
	bool in_time = false, any = false;
	char seen[8] = "";
	const char *p = s;

	if (!s || *p++ != 'P')
		return -EINVAL;
	while (*p) {
		char *end;
		long double v;

		if (*p == 'T') {
			if (in_time)
				return -EINVAL;
			in_time = true;
			p++;
			continue;
		}
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		/* Digits with an optional fraction only: strtold would take hex and exponents. */
		end = (char *)p + strspn(p, "0123456789");
		if (*end == '.') {
			if (!isdigit((unsigned char)end[1]))
				return -EINVAL;
			end += 1 + strspn(end + 1, "0123456789");
		}
		if (end - p > 20)
			return -EINVAL;
		{
			char num[24];
			memcpy(num, p, (size_t)(end - p));
			num[end - p] = '\0';
			v = strtold(num, NULL);
		}
		if (v > 1e12)
			return -EINVAL;
		p = end;
		switch (*p) {
		case 'Y': if (in_time) return -EINVAL; total += v * 365 * 86400000.0L; break;
		case 'M': total += in_time ? v * 60000.0L : v * 30 * 86400000.0L; break;
		case 'D': if (in_time) return -EINVAL; total += v * 86400000.0L; break;
		case 'H': if (!in_time) return -EINVAL; total += v * 3600000.0L; break;
		case 'S': if (!in_time) return -EINVAL; total += v * 1000.0L; break;
		default: return -EINVAL;
		}
		if (strchr(seen, *p) && !(in_time && *p == 'M' && !strchr(seen, 'm')))
			return -EINVAL;      /* each designator once, in order */
		{
			size_t k = strlen(seen);
			if (k + 1 < sizeof seen) {
				seen[k] = in_time && *p == 'M' ? 'm' : *p;
				seen[k + 1] = '\0';
			}
		}
		any = true;
		p++;
	}
	if (!any || total > 9e15L || (in_time && !strpbrk(seen, "HmS")))
		return -EINVAL;
	return (long long)total;
}

static int take_header(char **slot, xmlNodePtr n, const char *name, struct soap_error *err)
{
	if (*slot) {
		err->fault = SF_INVALID_HEADER;
		snprintf(err->arg, sizeof err->arg,
		    "The WS-Management service cannot process the request. The SOAP header %s appears more than once. ",
		    name);
		return -EINVAL;
	}
	*slot = soap_text(n);
	if (strlen(*slot) > SOAP_MAX_URI) {
		err->fault = SF_INVALID_HEADER;
		snprintf(err->arg, sizeof err->arg,
		    "The WS-Management service cannot process the request. The SOAP header %s is too long. ", name);
		return -EINVAL;
	}
	return 0;
}

static int parse_set(xmlNodePtr set, const char *elem, struct soap_kv *kv, size_t *n, size_t max,
    bool selectors, struct soap_error *err)
{
	char buf[SOAP_MAX_ID + 1];

	for (xmlNodePtr c = set->children; c; c = c->next) {
		const char *name;

		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (!soap_is(c, NS_WSMAN, elem) || *n >= max ||
		    !(name = soap_attr(c, "Name", buf, sizeof buf)) || !*name) {
			err->fault = selectors ? SF_SCHEMA_VALIDATION : SF_INVALID_OPTIONS;
			snprintf(err->arg, sizeof err->arg,
			    "The WS-Management service cannot process the request. The %s set is invalid or has more than %zu entries. ",
			    selectors ? "selector" : "option", max);
			return -EINVAL;
		}
		for (size_t i = 0; i < *n; i++)
			if (str_ieq(kv[i].name, name)) {
				err->fault = selectors ? SF_SCHEMA_VALIDATION : SF_INVALID_OPTIONS;
				snprintf(err->arg, sizeof err->arg,
				    "The WS-Management service cannot process the request. The %s %.64s appears more than once. ",
				    selectors ? "selector" : "option", name);
				return -EINVAL;
			}
		kv[*n].name = xstrdup(name);
		kv[*n].value = soap_text(c);
		if (!selectors) {
			const char *mc = soap_attr(c, "MustComply", buf, sizeof buf);
			kv[*n].must_comply = mc && (str_ieq(mc, "true") || !strcmp(mc, "1"));
		}
		(*n)++;
	}
	return 0;
}

static int parse_headers(struct soap_req *req, bool identify, struct soap_error *err)
{
	char *timeout = NULL, *maxenv = NULL;
	int r = 0;

	for (xmlNodePtr n = req->header ? req->header->children : NULL; n && r == 0; n = n->next) {
		if (n->type != XML_ELEMENT_NODE || !n->ns)
			continue;
		if (soap_is(n, NS_WSA, "Action"))
			r = take_header(&req->action, n, "Action", err);
		else if (soap_is(n, NS_WSA, "To"))
			r = take_header(&req->to, n, "To", err);
		else if (soap_is(n, NS_WSA, "MessageID"))
			r = take_header(&req->message_id, n, "MessageID", err);
		else if (soap_is(n, NS_WSA, "ReplyTo"))
			r = take_header(&req->reply_to, n, "ReplyTo", err);
		else if (soap_is(n, NS_WSMAN, "ResourceURI"))
			r = take_header(&req->resource_uri, n, "ResourceURI", err);
		else if (soap_is(n, NS_WSMAN, "OperationTimeout"))
			r = take_header(&timeout, n, "OperationTimeout", err);
		else if (soap_is(n, NS_WSMAN, "MaxEnvelopeSize"))
			r = take_header(&maxenv, n, "MaxEnvelopeSize", err);
		else if (soap_is(n, NS_WSMAN, "Locale")) {
			char buf[64];
			free(req->locale);
			req->locale = xstrdup(soap_attr(n, "lang", buf, sizeof buf) ? buf : "");
		} else if (soap_is(n, NS_WSMV, "DataLocale")) {
			char buf[64];
			free(req->data_locale);
			req->data_locale = xstrdup(soap_attr(n, "lang", buf, sizeof buf) ? buf : "");
		} else if (soap_is(n, NS_WSMV, "SessionId"))
			r = take_header(&req->session_id, n, "SessionId", err);
		else if (soap_is(n, NS_WSMAN, "SelectorSet"))
			r = parse_set(n, "Selector", req->selectors, &req->n_selectors,
			    SOAP_MAX_SELECTORS, true, err);
		else if (soap_is(n, NS_WSMAN, "OptionSet"))
			r = parse_set(n, "Option", req->options, &req->n_options,
			    SOAP_MAX_OPTIONS, false, err);
		else if (soap_is(n, NS_RSP, "CompressionType")) {
			char *t = soap_text(n);
			req->compression_xpress = str_ieq(t, "xpress");
			free(t);
		}
		/* Unknown headers are ignored: tolerance is what keeps old clients working. */
	}
	if (r < 0)
		goto out;
	if (timeout) {
		req->timeout_ms = soap_duration_ms(timeout);
		if (req->timeout_ms < 0) {
			err->fault = SF_INVALID_TIMEOUT;
			snprintf(err->arg, sizeof err->arg, "%.200s", timeout);
			r = -EINVAL;
			goto out;
		}
	}
	if (maxenv) {
		unsigned long long v;
		if (parse_uint(maxenv, 0, 0xffffffffULL, &v) < 0) {
			err->fault = SF_INVALID_HEADER;
			snprintf(err->arg, sizeof err->arg,
			    "The WS-Management service cannot process the request. The MaxEnvelopeSize header value %.64s is not a number. ",
			    maxenv);
			r = -EINVAL;
			goto out;
		}
		if (v < SOAP_MIN_ENVELOPE) {
			err->fault = SF_MIN_ENVELOPE;
			r = -EINVAL;
			goto out;
		}
		req->max_envelope = (long long)v;
	}
	if (identify) {
		/* Identify requests carry an empty header (Test-WSMan, winrm id). */
	} else if (!req->action) {
		err->fault = SF_HEADER_REQUIRED;
		snprintf(err->arg, sizeof err->arg, "Action");
		r = -EINVAL;
	} else if (!req->message_id || !*req->message_id) {
		err->fault = SF_HEADER_REQUIRED;
		snprintf(err->arg, sizeof err->arg, "MessageID");
		r = -EINVAL;
	} else if (strlen(req->message_id) > SOAP_MAX_ID) {
		err->fault = SF_INVALID_HEADER;
		snprintf(err->arg, sizeof err->arg,
		    "The WS-Management service cannot process the request. The MessageID is too long. ");
		free(req->message_id);       /* too long to echo back */
		req->message_id = NULL;
		r = -EINVAL;
	}
out:
	free(timeout);
	free(maxenv);
	return r;
}

/*
 * Count attributes per start tag before libxml2 sees the text: libxml2 2.9
 * checks each new attribute against all earlier ones of the tag, so 50 000
 * attributes cost half a minute of the worker's only thread.  A small state
 * machine over the bytes; comments, CDATA, PIs and quoted values are skipped.
 */
static bool attrs_bounded(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned count = 0;
		unsigned char q = 0;

		if (p[i] != '<') {
			i++;
			continue;
		}
		if (n - i >= 4 && !memcmp(p + i, "<!--", 4)) {
			const unsigned char *e = memmem(p + i + 4, n - i - 4, "-->", 3);
			i = e ? (size_t)(e - p) + 3 : n;
			continue;
		}
		if (n - i >= 9 && !memcmp(p + i, "<![CDATA[", 9)) {
			const unsigned char *e = memmem(p + i + 9, n - i - 9, "]]>", 3);
			i = e ? (size_t)(e - p) + 3 : n;
			continue;
		}
		for (i++; i < n; i++) {
			if (q) {
				if (p[i] == q)
					q = 0;
			} else if (p[i] == '"' || p[i] == '\'') {
				q = p[i];
			} else if (p[i] == '=') {
				if (++count > SOAP_MAX_ATTRS)
					return false;
			} else if (p[i] == '>') {
				i++;
				break;
			}
		}
	}
	return true;
}

static void put_utf8(struct buf *b, uint32_t u)
{
	unsigned char s[4];
	size_t n;

	if (u < 0x80) {
		s[0] = (unsigned char)u; n = 1;
	} else if (u < 0x800) {
		s[0] = (unsigned char)(0xc0 | u >> 6); s[1] = (unsigned char)(0x80 | (u & 0x3f)); n = 2;
	} else if (u < 0x10000) {
		s[0] = (unsigned char)(0xe0 | u >> 12); s[1] = (unsigned char)(0x80 | (u >> 6 & 0x3f));
		s[2] = (unsigned char)(0x80 | (u & 0x3f)); n = 3;
	} else {
		s[0] = (unsigned char)(0xf0 | u >> 18); s[1] = (unsigned char)(0x80 | (u >> 12 & 0x3f));
		s[2] = (unsigned char)(0x80 | (u >> 6 & 0x3f)); s[3] = (unsigned char)(0x80 | (u & 0x3f));
		n = 4;
	}
	buf_append(b, s, n);
}

/* UTF-16 (after any BOM) to UTF-8; trailing U+0000 padding is dropped, any other is refused. */
static int utf16_to_utf8(const unsigned char *p, size_t n, bool be, struct buf *out)
{
	if (n % 2)
		return -EILSEQ;
	while (n >= 2 && !p[n - 1] && !p[n - 2])
		n -= 2;
	for (size_t i = 0; i < n; i += 2) {
		uint32_t u = be ? (uint32_t)p[i] << 8 | p[i + 1] : (uint32_t)p[i + 1] << 8 | p[i];
		if (u == 0 || (u >= 0xdc00 && u < 0xe000))
			return -EILSEQ;
		if (u >= 0xd800 && u < 0xdc00) {
			uint32_t lo;
			if (n - i < 4)
				return -EILSEQ;
			i += 2;
			lo = be ? (uint32_t)p[i] << 8 | p[i + 1] : (uint32_t)p[i + 1] << 8 | p[i];
			if (lo < 0xdc00 || lo >= 0xe000)
				return -EILSEQ;
			u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
		}
		put_utf8(out, u);
	}
	return 0;
}

/* The encoding an XML declaration names, or "" when there is none. */
static void declared_encoding(const unsigned char *p, size_t n, char *out, size_t cap)
{
	const unsigned char *end, *e;
	size_t k = 0;
	unsigned char q;

	out[0] = '\0';
	if (!p || n < 6 || memcmp(p, "<?xml", 5) || !isspace(p[5]))
		return;
	end = memmem(p, MIN(n, 1024), "?>", 2);
	e = end ? memmem(p, (size_t)(end - p), "encoding", 8) : NULL;
	if (!e)
		return;
	for (e += 8; e < end && isspace(*e); e++)
		;
	if (e >= end || *e++ != '=')
		return;
	for (; e < end && isspace(*e); e++)
		;
	if (e >= end || (*e != '"' && *e != '\''))
		return;
	for (q = *e++; e < end && *e != q && k + 1 < cap; e++)
		out[k++] = (char)(isprint(*e) ? *e : '?');
	out[k] = '\0';
}

/*
 * What libxml2 gets is UTF-8 and nothing else.  It would otherwise decode
 * whatever the document declares or starts like (EBCDIC, UCS-4, ...), and
 * then attrs_bounded would count bytes the parser never sees as '='.
 * UTF-16 is transcoded here; any other declared encoding is refused.
 */
static int body_utf8(const unsigned char *p, size_t n, struct buf *out, struct soap_error *err)
{
	char enc[48];
	int r = 0;

	if (n >= 2 && ((p[0] == 0xff && p[1] == 0xfe) || (p[0] == 0xfe && p[1] == 0xff)))
		r = utf16_to_utf8(p + 2, n - 2, p[0] == 0xfe, out);
	else if (n >= 2 && ((p[0] == '<' && p[1] == 0) || (p[0] == 0 && p[1] == '<')))
		r = utf16_to_utf8(p, n, p[0] == 0, out);
	else if (n >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
		r = buf_append(out, p + 3, n - 3);
	else
		r = buf_append(out, p, n);
	if (r < 0 || !out->len || memchr(out->data, '\0', out->len) ||
	    (out->data[0] != '<' && !isspace(out->data[0]))) {
		err->fault = SF_INVALID_XML;
		snprintf(err->arg, sizeof err->arg,
		    "The request is not UTF-8 or UTF-16 text. Only UTF-8 and UTF-16 are accepted. ");
		return -EINVAL;
	}
	declared_encoding(out->data, out->len, enc, sizeof enc);
	if (*enc && !str_ieq(enc, "UTF-8") && !str_ieq(enc, "UTF8") && !str_ieq(enc, "UTF-16") &&
	    !str_ieq(enc, "UTF-16LE") && !str_ieq(enc, "UTF-16BE")) {
		err->fault = SF_INVALID_XML;
		snprintf(err->arg, sizeof err->arg,
		    "The request declares the character encoding %s. Only UTF-8 and UTF-16 are accepted. ",
		    enc);
		return -EINVAL;
	}
	return 0;
}

int soap_parse(const void *data, size_t len, struct soap_req *req, struct soap_error *err)
{
	struct parse_guard g = { 0 };
	xmlParserCtxtPtr ctxt;
	xmlNodePtr root;
	struct buf text;
	int r = -EINVAL;

	memset(req, 0, sizeof *req);
	req->timeout_ms = -1;
	req->max_envelope = -1;
	memset(err, 0, sizeof *err);

	/* OMI's client pads encrypted plaintext with NULs; a UTF-16 body ends in one legitimately. */
	{
		const unsigned char *b = data;
		bool utf16 = len >= 2 && ((b[0] == 0xff && b[1] == 0xfe) || (b[0] == 0xfe && b[1] == 0xff) ||
		    (b[0] == '<' && b[1] == 0) || (b[0] == 0 && b[1] == '<'));
		while (!utf16 && len && b[len - 1] == '\0')
			len--;
	}
	if (len == 0 || len > INT32_MAX / 2) {
		err->fault = SF_INVALID_XML;
		snprintf(err->arg, sizeof err->arg, "The request body is empty. ");
		return -EINVAL;
	}
	buf_init(&text, 0);
	if (body_utf8(data, len, &text, err) < 0) {
		buf_free(&text);
		return -EINVAL;
	}
	if (!attrs_bounded(text.data, text.len)) {
		buf_free(&text);
		err->fault = SF_INVALID_XML;
		snprintf(err->arg, sizeof err->arg,
		    "The request has an element with more than %d attributes. ", SOAP_MAX_ATTRS);
		return -EINVAL;
	}
	ctxt = xmlNewParserCtxt();
	if (!ctxt)
		fatal("out of memory");
	g.start = ctxt->sax->startElementNs;
	g.end = ctxt->sax->endElementNs;
	ctxt->sax->startElementNs = guard_start;
	ctxt->sax->endElementNs = guard_end;
	ctxt->sax->internalSubset = guard_internal_subset;
	ctxt->sax->externalSubset = guard_internal_subset;
	ctxt->sax->entityDecl = guard_entity_decl;
	ctxt->sax->getEntity = guard_get_entity;
	ctxt->sax->error = silent_error;
	ctxt->sax->warning = silent_error;
	ctxt->sax->serror = NULL;
	ctxt->_private = &g;

	req->doc = xmlCtxtReadMemory(ctxt, (const char *)text.data, (int)text.len, "request.xml",
	    "UTF-8", XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
	    XML_PARSE_IGNORE_ENC | SOAP_XXE_FLAG);
	buf_free(&text);
	if (g.dtd || g.too_deep || !req->doc || !ctxt->wellFormed) {
		err->fault = SF_INVALID_XML;
		if (g.dtd)
			snprintf(err->arg, sizeof err->arg,
			    "The request contains a document type declaration, which WS-Management does not allow. ");
		else if (g.too_deep)
			snprintf(err->arg, sizeof err->arg,
			    "The request XML is nested more than %d elements deep. ", SOAP_MAX_DEPTH);
		else {
			const xmlError *e = xmlCtxtGetLastError(ctxt);
			char why[128];
			snprintf(why, sizeof why, "%s", e && e->message ? e->message : "parse error");
			snprintf(err->arg, sizeof err->arg, "The request is not well-formed XML (line %d: %s). ",
			    e ? e->line : 0, str_trim(why));
		}
		goto out;
	}
	root = xmlDocGetRootElement(req->doc);
	if (!soap_is(root, NS_SOAP, "Envelope")) {
		err->fault = SF_INVALID_XML;
		snprintf(err->arg, sizeof err->arg,
		    "The request is not a SOAP 1.2 envelope (expected Envelope in namespace " NS_SOAP "). ");
		goto out;
	}
	req->header = soap_child(root, NS_SOAP, "Header");
	req->body = soap_child(root, NS_SOAP, "Body");
	if (!req->header || !req->body) {
		err->fault = SF_SCHEMA_VALIDATION;
		snprintf(err->arg, sizeof err->arg, "The SOAP envelope must have a Header and a Body. ");
		goto out;
	}
	r = parse_headers(req, soap_child(req->body, NS_WSMID, "Identify") != NULL, err);
out:
	xmlFreeParserCtxt(ctxt);
	return r;
}

void soap_req_free(struct soap_req *req)
{
	for (size_t i = 0; i < req->n_selectors; i++) {
		free(req->selectors[i].name);
		free(req->selectors[i].value);
	}
	for (size_t i = 0; i < req->n_options; i++) {
		free(req->options[i].name);
		free(req->options[i].value);
	}
	free(req->action);
	free(req->to);
	free(req->message_id);
	free(req->reply_to);
	free(req->resource_uri);
	free(req->locale);
	free(req->data_locale);
	free(req->session_id);
	if (req->doc)
		xmlFreeDoc(req->doc);
	memset(req, 0, sizeof *req);
}

const char *soap_selector(const struct soap_req *req, const char *name)
{
	for (size_t i = 0; i < req->n_selectors; i++)
		if (str_ieq(req->selectors[i].name, name))
			return req->selectors[i].value;
	return NULL;
}

const char *soap_option(const struct soap_req *req, const char *name)
{
	for (size_t i = 0; i < req->n_options; i++)
		if (str_ieq(req->options[i].name, name))
			return req->options[i].value;
	return NULL;
}

bool soap_option_bool(const struct soap_req *req, const char *name, bool dflt)
{
	const char *v = soap_option(req, name);

	if (!v)
		return dflt;
	if (str_ieq(v, "true") || !strcmp(v, "1"))
		return true;
	if (str_ieq(v, "false") || !strcmp(v, "0"))
		return false;
	return dflt;
}

/* ---- writing ---------------------------------------------------------- */

static const char *const envelope_ns[][2] = {
	{ "xmlns:s", NS_SOAP }, { "xmlns:a", NS_WSA }, { "xmlns:x", NS_WST },
	{ "xmlns:e", NS_WSE }, { "xmlns:n", NS_WSEN }, { "xmlns:w", NS_WSMAN },
	{ "xmlns:p", NS_WSMV }, { "xmlns:rsp", NS_RSP }, { "xmlns:cfg", NS_CFG },
};

void soap_w_start(struct soap_reply *r, const char *qname)
{
	xmlTextWriterStartElement(r->w, (const xmlChar *)qname);
}

void soap_w_end(struct soap_reply *r)
{
	xmlTextWriterEndElement(r->w);
}

void soap_w_attr(struct soap_reply *r, const char *name, const char *value)
{
	xmlTextWriterWriteAttribute(r->w, (const xmlChar *)name, (const xmlChar *)value);
}

void soap_w_text(struct soap_reply *r, const char *text)
{
	xmlTextWriterWriteString(r->w, (const xmlChar *)text);
}

void soap_w_elem(struct soap_reply *r, const char *qname, const char *text)
{
	xmlTextWriterWriteElement(r->w, (const xmlChar *)qname, (const xmlChar *)text);
}

void soap_w_raw(struct soap_reply *r, const char *xml)
{
	xmlTextWriterWriteRaw(r->w, (const xmlChar *)xml);
}

static char envelope_open[1024];

static void envelope_open_init(void)
{
	size_t o = (size_t)snprintf(envelope_open, sizeof envelope_open, "<s:Envelope xml:lang=\"en-US\"");

	for (size_t i = 0; i < ARRAY_SIZE(envelope_ns); i++)
		o += (size_t)snprintf(envelope_open + o, sizeof envelope_open - o, " %s=\"%s\"",
		    envelope_ns[i][0], envelope_ns[i][1]);
	snprintf(envelope_open + o, sizeof envelope_open - o, ">");
}

/* Appends text escaped as xmlTextWriter escapes element content. */
static void text_append(struct buf *b, const char *s)
{
	for (const char *p = s; *p; p++) {
		size_t n = strcspn(p, "&<>\r");
		buf_append(b, p, n);
		p += n;
		if (!*p)
			break;
		buf_appends(b, *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : "&#13;");
	}
}

static int reply_open(struct soap_reply *r, const char *action, const char *relates_to)
{
	char id[37];
	struct buf h;

	memset(r, 0, sizeof *r);
	r->xbuf = xmlBufferCreate();
	if (!r->xbuf || !(r->w = xmlNewTextWriterMemory(r->xbuf, 0)))
		fatal("out of memory");
	/*
	 * The opening tag never changes: written raw once instead of escaping
	 * nine attributes per reply; soap_reply_end writes its closing tag.
	 */
	soap_w_raw(r, envelope_open);
	soap_w_start(r, "s:Header");
	if (!action) {          /* Identify: Windows answers with an empty header */
		soap_w_end(r);
		soap_w_start(r, "s:Body");
		return 0;
	}
	/* Every reply has this header: one raw write instead of four writer elements. */
	uuid_upper(id);
	buf_init(&h, 0);
	buf_appends(&h, "<a:Action>");
	text_append(&h, action);
	buf_appendf(&h, "</a:Action><a:MessageID>uuid:%s</a:MessageID><a:To>%s</a:To>", id, WSA_ANONYMOUS);
	if (relates_to) {
		buf_appends(&h, "<a:RelatesTo>");
		text_append(&h, relates_to);
		buf_appends(&h, "</a:RelatesTo>");
	}
	soap_w_raw(r, buf_str(&h));
	buf_free(&h);
	soap_w_end(r);
	soap_w_start(r, "s:Body");
	return 0;
}

int soap_reply_begin(struct soap_reply *r, const struct soap_req *req, const char *action)
{
	return reply_open(r, action, req ? req->message_id : NULL);
}

int soap_reply_end(struct soap_reply *r, struct buf *out)
{
	int rc = 0;

	xmlTextWriterEndDocument(r->w);  /* closes every element opened with the writer */
	xmlTextWriterWriteRaw(r->w, (const xmlChar *)"</s:Envelope>");
	xmlTextWriterFlush(r->w);
	xmlFreeTextWriter(r->w);
	r->w = NULL;
	if (buf_append(out, xmlBufferContent(r->xbuf), (size_t)xmlBufferLength(r->xbuf)) < 0)
		rc = -EMSGSIZE;
	xmlBufferFree(r->xbuf);
	r->xbuf = NULL;
	return rc;
}

void soap_reply_abort(struct soap_reply *r)
{
	if (r->w)
		xmlFreeTextWriter(r->w);
	if (r->xbuf)
		xmlBufferFree(r->xbuf);
	memset(r, 0, sizeof *r);
}

int soap_fault(const struct soap_req *req, enum soap_fault f, const char *arg,
    const char *machine, struct buf *out, int *http_status)
{
	const struct fault_def *d = &faults[f];
	struct soap_reply r;
	char msg[2048];

	if (d->message) {
		/* The formats are ours; arg is data, inserted through %s only. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(msg, sizeof msg, d->message, arg ? arg : "");
#pragma GCC diagnostic pop
	} else {
		snprintf(msg, sizeof msg, "%s", d->reason);
	}
	/* Parts of msg came from the request (or libxml2 quoting it), maybe cut mid-character. */
	utf8_sanitize(msg);
	reply_open(&r, d->addressing ? "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault"
	    : "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", req ? req->message_id : NULL);
	soap_w_start(&r, "s:Fault");
	soap_w_start(&r, "s:Code");
	soap_w_elem(&r, "s:Value", d->code);
	soap_w_start(&r, "s:Subcode");
	soap_w_elem(&r, "s:Value", d->subcode);
	soap_w_end(&r);
	soap_w_end(&r);
	soap_w_start(&r, "s:Reason");
	soap_w_start(&r, "s:Text");
	soap_w_attr(&r, "xml:lang", "en-US");
	soap_w_text(&r, d->reason);
	soap_w_end(&r);
	soap_w_end(&r);
	soap_w_start(&r, "s:Detail");
	if (d->detail)
		soap_w_elem(&r, "w:FaultDetail", d->detail);
	soap_w_start(&r, "f:WSManFault");
	soap_w_attr(&r, "xmlns:f", NS_FAULT);
	xmlTextWriterWriteFormatAttribute(r.w, (const xmlChar *)"Code", "%lu", d->wsman_code);
	soap_w_attr(&r, "Machine", machine ? machine : "localhost");
	soap_w_elem(&r, "f:Message", msg);
	*http_status = d->http;
	return soap_reply_end(&r, out);
}
