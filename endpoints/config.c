/*
 * config.c - Get on http://schemas.microsoft.com/wbem/wsman/1/config (worker).
 *
 * pypsrp and the Ruby client read cfg:MaxEnvelopeSizekb here to size their
 * messages; the rest of the tree mirrors `winrm get winrm/config` so an
 * admin sees the effective values with the tools they know.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "net_state.h"
#include "wsman.h"

static void num(struct soap_reply *r, const char *name, unsigned long long v)
{
	char s[32];

	snprintf(s, sizeof s, "%llu", v);
	soap_w_elem(r, name, s);
}

static void flag(struct soap_reply *r, const char *name, bool v)
{
	soap_w_elem(r, name, v ? "true" : "false");
}

static void write_service(struct soap_reply *r, const struct conf *cf)
{
	static const char *const cbt[] = { "None", "Relaxed", "Strict" };

	soap_w_start(r, "cfg:Service");
	num(r, "cfg:MaxConcurrentOperationsPerUser", cf->service.max_ops_per_user);
	num(r, "cfg:MaxConnections", cf->service.max_connections);
	flag(r, "cfg:AllowUnencrypted", cf->service.allow_unencrypted);
	soap_w_start(r, "cfg:Auth");
	flag(r, "cfg:Basic", cf->auth.basic);
	flag(r, "cfg:Kerberos", cf->auth.kerberos);
	flag(r, "cfg:Negotiate", cf->auth.negotiate);
	flag(r, "cfg:Certificate", cf->auth.certificate);
	flag(r, "cfg:CredSSP", false);
	soap_w_elem(r, "cfg:CbtHardeningLevel", cbt[cf->auth.cbt_level]);
	soap_w_end(r);
	soap_w_start(r, "cfg:DefaultPorts");
	num(r, "cfg:HTTP", 5985);
	num(r, "cfg:HTTPS", 5986);
	soap_w_end(r);
	soap_w_end(r);
}

static void write_winrs(struct soap_reply *r, const struct conf *cf)
{
	soap_w_start(r, "cfg:Winrs");
	flag(r, "cfg:AllowRemoteShellAccess", cf->winrs.allow_remote_shell);
	num(r, "cfg:IdleTimeout", cf->winrs.idle_timeout_ms);
	num(r, "cfg:MaxConcurrentUsers", cf->winrs.max_users);
	num(r, "cfg:MaxShellRunTime", cf->winrs.max_shell_runtime_ms);
	num(r, "cfg:MaxProcessesPerShell", cf->winrs.max_procs_per_shell);
	num(r, "cfg:MaxMemoryPerShellMB", cf->winrs.max_memory_mb);
	num(r, "cfg:MaxShellsPerUser", cf->winrs.max_shells_per_user);
	soap_w_end(r);
}

/*
 * The whole tree only changes with the configuration, and clients read it on
 * every connect: it is serialised once per configuration and written raw.
 */
static const char *config_tree(void)
{
	static char *cached;
	static unsigned gen;
	const struct conf *cf = &NET.conf;
	struct soap_reply r;
	xmlBufferPtr b;

	if (cached && gen == NET.conf_gen)
		return cached;
	free(cached);
	b = xmlBufferCreate();
	r.xbuf = b;
	r.w = xmlNewTextWriterMemory(b, 0);
	if (!r.w)
		fatal("out of memory");
	soap_w_start(&r, "cfg:Config");
	soap_w_attr(&r, "xmlns:cfg", NS_CFG);
	num(&r, "cfg:MaxEnvelopeSizekb", cf->service.max_envelope_kb);
	num(&r, "cfg:MaxTimeoutms", cf->service.max_timeout_ms);
	num(&r, "cfg:MaxBatchItems", cf->service.max_batch_items);
	num(&r, "cfg:MaxProviderRequests", 4294967295ULL);
	write_service(&r, cf);
	write_winrs(&r, cf);
	xmlTextWriterEndDocument(r.w);
	xmlFreeTextWriter(r.w);
	cached = xstrndup((const char *)xmlBufferContent(b), (size_t)xmlBufferLength(b));
	xmlBufferFree(b);
	gen = NET.conf_gen;
	return cached;
}

static void config_get(struct wsman_call *c)
{
	const struct conf *cf = &NET.conf;
	const char *sub = c->req.resource_uri + strlen(URI_CONFIG);
	struct soap_reply r;

	soap_reply_begin(&r, &c->req, ACT_GET "Response");
	if (!*sub) {
		soap_w_raw(&r, config_tree());
	} else if (str_ieq(sub, "/Service")) {
		write_service(&r, cf);
	} else if (str_ieq(sub, "/Winrs")) {
		write_winrs(&r, cf);
	} else {
		soap_reply_abort(&r);
		wsman_fault(c, SF_RESOURCE_NOT_FOUND, c->req.resource_uri);
		return;
	}
	wsman_reply(c, &r);
}

static bool config_handles(const char *uri)
{
	return str_ieq(uri, URI_CONFIG) || str_iprefix(uri, URI_CONFIG "/");
}

static const struct wsman_action config_actions[] = {
	{ ACT_GET, config_get },
	{ NULL, NULL },
};

static const struct wsman_endpoint config_endpoint = {
	.name = "config",
	.handles = config_handles,
	.actions = config_actions,
};

void config_register(void)
{
	wsman_register(&config_endpoint);
}
