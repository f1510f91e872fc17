/*
 * mon_state.c - the monitor's shared state and the helpers every part of it
 * uses: ids, answers to the worker, checks of the worker's strings (monitor,
 * root).
 *
 * It sits below the other mon_*.c files and calls none of them.
 */
#include <errno.h>
#include <string.h>

#include "ipc.h"
#include "log.h"
#include "mon_int.h"
#include "util.h"

struct mon_state M = { .exe_fd = -1 };

uint64_t mon_new_id(void)
{
	uint64_t id;

	do
		random_bytes(&id, sizeof id);
	while (id == 0);
	return id;
}

void mon_send_worker(struct ipc_out *o)
{
	int r;

	if (!M.worker) {
		ipc_out_free(o);
		return;
	}
	r = ipc_send(M.worker, o);
	if (r < 0 && r != -ECONNRESET)
		log_err_errno(r, "cannot send an IPC message to the worker");
}

bool mon_str_clean(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}
