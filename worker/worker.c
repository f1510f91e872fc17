/*
 * worker.c - the top of the worker (winrmd-net): starts its endpoints.
 *
 * The one file that names every endpoint.  Below it the request path runs
 * listener -> HTTP -> authentication -> envelope -> dispatch -> endpoint,
 * and no file calls up that path: endpoints register their resource URIs
 * and actions with wsman.c and their interest in the monitor's events with
 * net.c here, once the event loop exists.
 */
#include "auth.h"
#include "endpoints.h"
#include "http.h"
#include "net.h"
#include "seal.h"
#include "winrmd.h"
#include "wsman.h"

/* The request path, bottom up: each layer hands on to the next through these. */
static const struct http_handler http_next = {
	.request = auth_request,
	.add_challenges = auth_add_challenges,
	.seal = seal_response,
	.conn_closed = auth_conn_closed,
};

static const struct auth_next auth_next = {
	.serve = wsman_handle,
	.sealed = seal_serve,
	.forbidden = wsman_reject_forbidden,
};

static void start(void)
{
	http_set_handler(&http_next);
	auth_set_next(&auth_next);
	seal_set_next(wsman_handle);
	identify_register();
	config_register();
	/*
	 * Dispatch takes the first endpoint that accepts a resource URI, so the
	 * order matters where URIs could overlap: the shell resource itself
	 * first, then PowerShell configurations (one could name any URI), then
	 * the cmd shell.
	 */
	shell_register();
	psrp_register();
	winrs_register();
}

int worker_main(bool debug)
{
	return net_main(debug, start);
}
