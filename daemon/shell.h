/*
 * shell.h - WinRS remote shells and PSRP runspaces (worker).
 */
#ifndef WINRMD_SHELL_H
#define WINRMD_SHELL_H

#include <stdbool.h>
#include <stdint.h>

struct wsman_call;

void shell_init(void);
void shell_shutdown(void);
void shell_config_changed(void);
bool shell_handles(const struct wsman_call *c);
void shell_dispatch(struct wsman_call *c);
void shell_child_exited(uint64_t session, int pid, int status);
void shell_session_killed(uint64_t session);

#endif
