/*
 * identify.c - wsmid:Identify (worker).
 *
 * Test-WSMan and every "is WinRM there?" probe send this.  Unauthenticated,
 * the operating system version is hidden, as Windows hides it; clients read
 * "Stack: 3.0" to decide which protocol features the server has.
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "auth.h"
#include "net_state.h"
#include "wsman.h"
#include "winrmd.h"

#define PROFILE "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/"

static void build(struct soap_reply *r, bool https, bool authenticated)
{
	struct utsname u;
	char ver[200];

	if (authenticated && uname(&u) == 0)   /* "6.18.44-foo" -> "6.18.44", as Windows' dotted form */
		snprintf(ver, sizeof ver, "OS: %.*s SP: 0.0 Stack: 3.0",
		    (int)strspn(u.release, "0123456789."), u.release);
	else
		snprintf(ver, sizeof ver, "OS: 0.0.0 SP: 0.0 Stack: 3.0");
	soap_reply_begin(r, NULL, NULL);
	soap_w_start(r, "wsmid:IdentifyResponse");
	soap_w_attr(r, "xmlns:wsmid", NS_WSMID);
	soap_w_elem(r, "wsmid:ProtocolVersion", "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd");
	soap_w_elem(r, "wsmid:ProductVendor", "winrmd");
	soap_w_elem(r, "wsmid:ProductVersion", ver);
	soap_w_start(r, "wsmid:SecurityProfiles");
	if (https) {
		if (NET.conf.auth.basic)
			soap_w_elem(r, "wsmid:SecurityProfileName", PROFILE "https/basic");
		if (NET.conf.auth.certificate)
			soap_w_elem(r, "wsmid:SecurityProfileName", PROFILE "https/mutual");
		if ((NET.conf.auth.negotiate || NET.conf.auth.kerberos) && auth_negotiate_available())
			soap_w_elem(r, "wsmid:SecurityProfileName", PROFILE "https/spnego-kerberos");
	} else {
		if (NET.conf.auth.basic && NET.conf.service.allow_unencrypted)
			soap_w_elem(r, "wsmid:SecurityProfileName", PROFILE "http/basic");
		if ((NET.conf.auth.negotiate || NET.conf.auth.kerberos) && auth_negotiate_available())
			soap_w_elem(r, "wsmid:SecurityProfileName", PROFILE "http/spnego-kerberos");
	}
}

/*
 * Probes and monitoring hammer Identify and its answer only depends on the
 * configuration, the transport and whether the caller authenticated; each
 * variant is built once per configuration.
 */
static void identify(struct wsman_call *c)
{
	static struct cached {
		struct buf env;
		unsigned gen;
		bool built;
	} cache[2][2];
	struct soap_reply r;
	struct buf out;
	int https = !!c->https, auth = !!c->authenticated;
	struct cached *e = &cache[https][auth];

	if (!e->built || e->gen != NET.conf_gen) {
		buf_free(&e->env);
		buf_init(&e->env, 0);
		build(&r, https, auth);
		if (soap_reply_end(&r, &e->env) < 0) {
			e->built = false;
			wsman_fault(c, SF_INTERNAL_ERROR, "The reply could not be built. ");
			return;
		}
		e->gen = NET.conf_gen;
		e->built = true;
	}
	buf_init(&out, 0);
	buf_append(&out, e->env.data, e->env.len);
	wsman_reply_buf(c, &out);
}

void identify_register(void)
{
	wsman_register_identify(identify);
}
