/*
 * net.h - the worker's event loop and its channel to the monitor: what the
 * monitor may send, and who hears of it (worker only).
 */
#ifndef WINRMD_NET_H
#define WINRMD_NET_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "ipc.h"
#include "net_state.h"


/* The request table (messages the monitor may send) and the states it is read in. */
enum {
	NET_ST_NEW = 1u << 0,           /* no configuration yet */
	NET_ST_STAGING = 1u << 1,       /* the first configuration is arriving */
	NET_ST_SERVING = 1u << 2,
	NET_ST_RESTAGING = 1u << 3,     /* serving, and the next configuration is arriving */
	NET_ST_ALL = NET_ST_NEW | NET_ST_STAGING | NET_ST_SERVING | NET_ST_RESTAGING,
};
extern const struct ipc_handler net_ipc_handlers[];
extern const size_t net_ipc_n_handlers;
unsigned net_ipc_state(void);

/*
 * What the monitor tells the worker about sessions and processes, for the
 * endpoints that own them: they subscribe (at start) instead of net.c
 * calling up into them.
 */
struct net_events {
	void (*session_killed)(uint64_t session);
	void (*child_exited)(uint64_t session, int pid, int status);
	void (*shutdown)(void);         /* the worker is ending */
};
void net_subscribe(const struct net_events *ev);
/* The worker's loop; start() runs once the event loop exists, before any request. */
int net_main(bool debug, void (*start)(void));

#endif
