/*
 * net_state.h - the worker's shared state: its event loop, the configuration
 * in force and its listeners (worker only).
 *
 * Data only, defined in net.c: every layer of the worker reads it, so it
 * sits below them all and calls nothing.
 */
#ifndef WINRMD_NET_STATE_H
#define WINRMD_NET_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "conf.h"

struct ipc_chan;
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

#endif
