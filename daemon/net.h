/*
 * net.h - the network worker's shared state and its calls to the monitor
 * (worker only).
 */
#ifndef WINRMD_NET_H
#define WINRMD_NET_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "conf.h"
#include "ipc.h"

struct MHD_Daemon;

struct net_listener {
	char *name;
	int transport;
	int fd;
	struct MHD_Daemon *d;
	sd_event_source *io;
	char *cert_pem;
	char *key_pem;
	size_t key_len;
	char *trust_pem;                /* CAs for client certificates, or NULL */
	unsigned char cert_hash[64];    /* tls-server-end-point, for channel binding */
	unsigned char ident[32];        /* everything it was started with: unchanged = kept on reload */
	unsigned cert_hash_len;
};

struct net_state {
	sd_event *ev;
	struct ipc_chan *mon;
	struct conf conf;
	bool configured;
	struct net_listener *ls[CONF_MAX_LISTENERS];
	size_t n_ls;
	/* The next configuration while the monitor is sending it. */
	char *staged_conf;
	uint32_t staged_facts, facts;    /* IPC_FACT_* from the monitor */
	unsigned conf_gen;              /* bumped each time a configuration is applied */
	struct net_listener *staged[CONF_MAX_LISTENERS];
	size_t n_staged;
	bool staging;                   /* between IPC_CONFIG and IPC_CONFIG_DONE */
	sd_event_source *mhd_timer;
	char hostname[256];
};
extern struct net_state NET;

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

/* http.c */
int http_listener_start(struct net_listener *l);
void http_listener_stop(struct net_listener *l);
void http_run_all(void);

#endif
