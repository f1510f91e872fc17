/*
 * winrmd.h - process entry points and names shared by main.c, the monitor
 * and the worker.
 */
#ifndef WINRMD_WINRMD_H
#define WINRMD_WINRMD_H

#include <stdbool.h>

#define WINRMD_VERSION "0.1.0"
#define WINRMD_USER "winrmd"            /* the worker's unprivileged account */
#define WINRMD_WORKER_NAME "winrmd-net"
#define WINRMD_WORKER_IPC_FD 3          /* the worker finds its channel here */

int mon_main(const char *conf_path, bool embedded, bool debug);
int worker_main(bool debug);

#endif
