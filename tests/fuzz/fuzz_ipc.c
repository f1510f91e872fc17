/*
 * fuzz_ipc.c - libFuzzer harness for the IPC field reader (ipc_u32 ... ipc_end),
 * which the monitor runs on every packet from a possibly compromised worker.
 *
 * Input layout: byte 0 = number of descriptors "received" (mod 5), byte 1 =
 * number of read operations k, then k opcode bytes, then the packet itself.
 * The packet is copied to a buffer of its exact size so any over-read is
 * caught by ASan.  Descriptor numbers are fake and never used as real fds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_msg m;
	const uint8_t *ops;
	unsigned char *pkt;
	size_t nops, plen;

	if (size < 2)
		return 0;
	memset(&m, 0, sizeof m);
	m.nfds = data[0] % (IPC_MAX_FDS + 1);
	for (size_t i = 0; i < IPC_MAX_FDS; i++)
		m.fds[i] = i < m.nfds ? 1000 + (int)i : -1;
	nops = data[1];
	if (nops > size - 2)
		nops = size - 2;
	ops = data + 2;
	plen = size - 2 - nops;
	pkt = malloc(plen ? plen : 1);
	if (!pkt)
		return 0;
	memcpy(pkt, ops + nops, plen);
	m.data = pkt;
	m.len = plen;
	m.type = ipc_u32(&m);          /* as ipc_recv_blocking does */

	for (size_t i = 0; i < nops; i++) {
		bool was_bad = m.bad;
		size_t off = m.off, n = 0;
		const unsigned char *b;
		const char *s;

		switch (ops[i] % 7) {
		case 0: (void)ipc_u32(&m); break;
		case 1: (void)ipc_i32(&m); break;
		case 2: (void)ipc_u64(&m); break;
		case 3:
			s = ipc_str(&m);
			if (!s)
				abort();
			if (*s && ((const unsigned char *)s < pkt ||
			    (const unsigned char *)s + strlen(s) >= pkt + plen))
				abort();
			break;
		case 4:
			b = ipc_bytes(&m, &n);
			if (b && (b < pkt || n > IPC_MAX_STRING || b + n >= pkt + plen || b[n] != '\0'))
				abort();
			if (!b && n != 0)
				abort();
			break;
		case 5:
			(void)ipc_fd(&m, ops[i] / 7 % (IPC_MAX_FDS + 1));
			break;
		case 6:
			(void)ipc_end(&m);
			break;
		}
		/* Reads only move forward, stay in the packet, and bad is sticky. */
		if (m.off < off || m.off > m.len || (was_bad && !m.bad))
			abort();
	}
	if (ipc_end(&m) && m.off != m.len)
		abort();
	free(pkt);
	return 0;
}
