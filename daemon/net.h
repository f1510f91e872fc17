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
	sd_event_source *mhd_timer;
	char hostname[256];
};
extern struct net_state NET;

/* A call to the monitor; the callback gets the reply positioned after the
 * request id, or NULL when the channel is gone or the call was cancelled. */
typedef void (*net_reply_fn)(void *ctx, struct ipc_msg *reply);
/* 0 when the message could not be encoded (see struct ipc_out): fn is never
 * called and ctx stays the caller's. */
uint32_t net_call(struct ipc_out *o, net_reply_fn fn, void *ctx);
void net_call_cancel(uint32_t id);
void net_send(struct ipc_out *o);
/* Start a message whose second field is the request id of a later net_call. */
uint32_t net_call_prepare(struct ipc_out *o, uint32_t type);

/* http.c */
int http_listener_start(struct net_listener *l);
void http_listener_stop(struct net_listener *l);
void http_run_all(void);

#endif
