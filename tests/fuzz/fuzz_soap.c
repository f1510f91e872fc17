/*
 * fuzz_soap.c - libFuzzer harness for the SOAP envelope parser (soap_parse)
 * and the replies built from what it returns (soap_fault, soap_reply_*).
 *
 * Beyond "no crash, no leak", two properties are checked, because a client
 * that cannot parse our answer hangs or retries forever:
 *  - a successful parse answered with soap_reply_begin/end gives an envelope
 *    that parses again and whose RelatesTo is the request's MessageID;
 *  - every fault we would send parses as XML.  A fault argument that is not
 *    valid UTF-8 is a known bug (see the report; soap.c cuts request text
 *    with %.200s), so that case is only checked with FUZZ_STRICT_FAULT=1 in
 *    the environment; otherwise the fuzzer would stop on it in seconds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/xmlerror.h>

#include "soap.h"

static bool strict_fault;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	soap_init();
	/*
	 * libxml2 reports encoding-conversion failures through its generic
	 * handler (stderr), which soap.c leaves in place; quiet it here only so
	 * fuzz logs stay readable.  See the report: the daemon prints these too.
	 */
	xmlSetGenericErrorFunc(NULL, quiet);
	strict_fault = getenv("FUZZ_STRICT_FAULT") != NULL;
	return 0;
}

/* Well-formed UTF-8 by lead/continuation bytes (libxml2 output never has worse). */
static bool utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k;

		if (c < 0x80)
			k = 0;
		else if (c >= 0xc2 && c <= 0xdf)
			k = 1;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3;
		else
			return false;
		if (k > n - i - 1)
			return false;
		for (size_t j = 1; j <= k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
		i += k + 1;
	}
	return true;
}

/* Text of the first element named `name` anywhere below n. */
static char *find_text(xmlNodePtr n, const char *ns, const char *name)
{
	for (; n; n = n->next) {
		char *t;
		if (soap_is(n, ns, name))
			return soap_text(n);
		if ((t = find_text(n->children, ns, name)))
			return t;
	}
	return NULL;
}

static void must_parse(const struct buf *out, const char *relates_to)
{
	struct soap_req rr;
	struct soap_error err;

	if (soap_parse(out->data, out->len, &rr, &err) != 0)
		abort();
	if (relates_to) {
		char *t = find_text(rr.header, NS_WSA, "RelatesTo");
		if (!t || strcmp(t, relates_to) != 0)
			abort();
		free(t);
	}
	soap_req_free(&rr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct soap_req req;
	struct soap_error err;
	struct buf out;
	int status, r;

	r = soap_parse(data, size, &req, &err);
	if (r != 0 && err.fault >= SF__MAX)
		abort();

	/* The worker answers a failed parse with a fault about the partial request. */
	buf_init(&out, 0);
	if (soap_fault(&req, r == 0 ? SF_TIMED_OUT : err.fault, r == 0 ? NULL : err.arg,
	    "fuzz", &out, &status) == 0) {
		if (strict_fault || utf8_valid((const unsigned char *)err.arg, strlen(err.arg)))
			must_parse(&out, NULL);
	}
	buf_free(&out);

	if (r == 0) {
		struct soap_reply rep;

		/* Echo what the endpoints echo: selectors and options as text. */
		soap_reply_begin(&rep, &req, req.action);
		soap_w_start(&rep, "w:SelectorSet");
		for (size_t i = 0; i < req.n_selectors; i++) {
			soap_w_start(&rep, "w:Selector");
			soap_w_attr(&rep, "Name", req.selectors[i].name);
			soap_w_text(&rep, req.selectors[i].value);
			soap_w_end(&rep);
		}
		soap_w_end(&rep);
		if (req.resource_uri)
			soap_w_elem(&rep, "w:ResourceURI", req.resource_uri);
		buf_init(&out, 0);
		if (soap_reply_end(&rep, &out) == 0 && req.action)
			must_parse(&out, req.message_id);
		buf_free(&out);
		(void)soap_option_bool(&req, "WINRS_NOPROFILE", false);
		(void)soap_selector(&req, "ShellId");
	}
	soap_req_free(&req);
	return 0;
}
