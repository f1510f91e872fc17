/*
 * auth.h - HTTP authentication in the worker: which schemes a listener
 * offers, and Basic credentials handed to the monitor (worker).
 */
#ifndef WINRMD_AUTH_H
#define WINRMD_AUTH_H

#include "http.h"

/* Authenticate r (may suspend); calls wsman_handle(r) once a principal is known. */
void auth_request(struct http_req *r);
/* The connection went away: release its login at the monitor. */
void auth_conn_closed(struct http_conn *c);
/* Add WWW-Authenticate headers for every scheme the listener can accept. */
struct MHD_Response;
void auth_add_challenges(struct http_req *r, struct MHD_Response *resp);
/* Whether a scheme the configuration enables is also built into this daemon. */
bool auth_negotiate_available(void);

/* Parse "Basic b64(user:pass)"; returns 0 and malloc'ed user/pass. */
int auth_basic_parse(const char *hdr, char **user, char **pass);

#endif
