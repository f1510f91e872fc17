/*
 * endpoints.h - how the worker starts its endpoints (worker).
 *
 * worker.c calls these once, when the event loop exists.  Each endpoint
 * registers its resource URIs and actions with wsman.c and the monitor's
 * events it cares for with net.c; nothing below calls up into them.
 */
#ifndef WINRMD_ENDPOINTS_H
#define WINRMD_ENDPOINTS_H

#include <stdbool.h>

void identify_register(void);
void config_register(void);
/* The shell resource (Enumerate, Get), the shared shell machinery and its events. */
void shell_register(void);
void psrp_register(void);
void winrs_register(void);

#endif
