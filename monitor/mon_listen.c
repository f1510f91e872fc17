/*
 * mon_listen.c - the listening sockets (monitor, root).
 *
 * The monitor opens the ports and hands the worker duplicates with each
 * configuration (mon_worker.c).  A reload keeps every socket whose
 * transport, address and port did not change, so no port is ever dropped
 * while the daemon runs; socket-activated descriptors are taken in place of
 * binding when they match.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>

#include "log.h"
#include "mon_int.h"
#include "tls.h"
#include "util.h"

static char *listener_key(const struct conf_listener *l)
{
	return xasprintf("%s|%s|%llu", conf_transport_name(l->transport), l->address, l->port);
}

static int open_listener(const struct conf_listener *l, int *out)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	int fd, one = 1, zero = 0, family;

	if (!strcmp(l->address, "*") || strchr(l->address, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		family = AF_INET6;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)l->port);
		if (strcmp(l->address, "*"))
			inet_pton(AF_INET6, l->address, &s6->sin6_addr);
		else
			s6->sin6_addr = in6addr_any;
		sl = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		family = AF_INET;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)l->port);
		inet_pton(AF_INET, l->address, &s4->sin_addr);
		sl = sizeof *s4;
	}
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 && family == AF_INET6 && !strcmp(l->address, "*")) {
		/* No IPv6 on this host: fall back to 0.0.0.0. */
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		memset(&ss, 0, sizeof ss);
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)l->port);
		sl = sizeof *s4;
		family = AF_INET;
		fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	}
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, !strcmp(l->address, "*") ? &zero : &one,
		    sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 256) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	*out = fd;
	return 0;
}

static bool sockaddr_matches(int fd, const struct conf_listener *l)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char addr[INET6_ADDRSTRLEN] = "";
	unsigned port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return false;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		port = ntohs(s4->sin_port);
		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		port = ntohs(s6->sin6_port);
		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
	}
	if (port != l->port)
		return false;
	return !strcmp(l->address, "*") || !strcmp(l->address, addr);
}

/*
 * Make M.listeners match the configuration: keep sockets whose identity is
 * unchanged (so a reload never drops a listening port), open new ones, close
 * the rest.  Socket-activated descriptors are used when they match.
 */
int mon_sync_listeners(const struct conf *c, int *activated, size_t n_activated)
{
	struct mon_listener next[CONF_MAX_LISTENERS];
	size_t n = 0;
	int r;

	for (size_t i = 0; i < M.n_listeners; i++)
		M.listeners[i].used = false;
	for (size_t i = 0; i < c->n_listeners; i++) {
		const struct conf_listener *l = &c->listeners[i];
		char *key;
		int fd = -1;

		if (!l->enabled)
			continue;
		key = listener_key(l);
		for (size_t j = 0; j < M.n_listeners && fd < 0; j++)
			if (!M.listeners[j].used && !strcmp(M.listeners[j].key, key)) {
				M.listeners[j].used = true;
				fd = M.listeners[j].fd;
			}
		for (size_t j = 0; j < n_activated && fd < 0; j++)
			if (activated[j] >= 0 && sockaddr_matches(activated[j], l)) {
				fd = activated[j];
				activated[j] = -1;
				log_info("listener %s: using socket-activated descriptor", l->name);
			}
		if (fd < 0) {
			r = open_listener(l, &fd);
			if (r < 0) {
				log_err_errno(r, "listener %s: cannot listen on %s port %llu", l->name,
				    l->address, l->port);
				free(key);
				for (size_t k = 0; k < n; k++) {
					bool old = false;
					for (size_t j = 0; j < M.n_listeners; j++)
						old |= M.listeners[j].fd == next[k].fd;
					if (!old)
						close(next[k].fd);
					free(next[k].key);
				}
				return r;
			}
			log_info("listener %s: %s on %s port %llu", l->name,
			    conf_transport_name(l->transport), l->address, l->port);
		}
		next[n].key = key;
		next[n].fd = fd;
		next[n].used = true;
		n++;
	}
	for (size_t j = 0; j < M.n_listeners; j++) {
		if (!M.listeners[j].used)
			close(M.listeners[j].fd);
		free(M.listeners[j].key);
	}
	for (size_t j = 0; j < n_activated; j++)
		if (activated[j] >= 0) {
			log_warn("socket-activated descriptor %d matches no listener; closing it", activated[j]);
			close(activated[j]);
			activated[j] = -1;
		}
	memcpy(M.listeners, next, n * sizeof *next);
	M.n_listeners = n;
	return 0;
}

/* Create the default self-signed certificate when an HTTPS listener uses it and it is missing. */
int mon_ensure_certificates(const struct conf *c)
{
	char err[512];

	for (size_t i = 0; i < c->n_listeners; i++) {
		const struct conf_listener *l = &c->listeners[i];
		if (!l->enabled || l->transport != CONF_HTTPS)
			continue;
		if (access(l->cert_file, F_OK) == 0 || access(l->key_file, F_OK) == 0)
			continue;
		if (strcmp(l->cert_file, CONF_DEFAULT_CERT) || strcmp(l->key_file, CONF_DEFAULT_KEY))
			continue;       /* explicit paths must exist; mon_send_config reports it */
		log_notice("generating a self-signed certificate %s", l->cert_file);
		if (tls_generate_self_signed(l->cert_file, l->key_file, 3072, 365, NULL, err,
		    sizeof err) < 0)
			return log_err_errno(EIO, "%s", err);
	}
	return 0;
}
