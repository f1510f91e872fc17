/*
 * wlimits.h - every hard limit of winrmd, in one place.
 *
 * Used by all processes.  A limit that the configuration can change has its
 * default here and its range in config/conf.c; the rest are fixed so that a
 * reader can see the worst case of every buffer at a glance.
 */
#ifndef WINRMD_WLIMITS_H
#define WINRMD_WLIMITS_H

/* HTTP front end (libmicrohttpd). */
#define HTTP_CONN_MEMORY_LIMIT      (32 * 1024)   /* headers + read buffer per connection; cleared per request */
#define HTTP_PER_IP_CONN_LIMIT      64            /* default of MaxConnectionsPerIP */
#define HTTP_CONN_TIMEOUT_S         120           /* > the longest OperationTimeout + slack */
#define HTTP_LOGIN_DEADLINE_S       30            /* a connection not logged in by then is closed */
#define HTTP_UNAUTH_PENDING_MAX     64            /* password checks in flight at the monitor */
#define HTTP_AUTH_QUEUE_MAX         1024          /* more wait in the worker; past this, 503 */
#define HTTP_AUTH_PER_ADDR_MAX      8             /* of those in flight, from one client address */
#define HTTP_HOST_MAX               255           /* a Host header we repeat back: DNS name and port */
#define HTTP_URL_MAX                512           /* the URL a client addressed, given to runspaces */
#define HTTP_ANON_BODY_MAX          (16 * 1024)   /* an anonymous Identify is ~200 bytes */
/* A request that cannot authenticate itself (no credentials, an NTLM NEGOTIATE) on a
 * connection with no login: enough for any handshake leg or fault, not for a flood. */
#define HTTP_UNAUTH_BODY_MAX        (64 * 1024)
/* A body may exceed the SOAP envelope limit by the multipart/encrypted framing. */
#define HTTP_BODY_OVERHEAD          4096
/* An oversized body up to this size is drained before the 413 (see http.c). */
#define HTTP_DISCARD_MAX            (128ULL * 1024 * 1024)

/* SOAP / XML. */
#define NET_MAX_SUBSCRIBERS         4             /* endpoints that take the monitor's events */
#define WSMAN_MAX_ENDPOINTS         16            /* registered endpoints (identify aside) */
#define SOAP_MAX_DEPTH              48            /* a WS-Man envelope is about 8 deep */
#define SOAP_MAX_ATTRS              64            /* per tag; libxml2 checks duplicates in O(n^2) */
#define SOAP_MAX_SELECTORS          16
#define SOAP_MAX_OPTIONS            32
#define SOAP_MAX_URI                2048
#define SOAP_MAX_ID                 256           /* MessageID, SessionId, ShellId ... */
#define SOAP_MIN_ENVELOPE           8192          /* MS-WSMV: below this is an EncodingLimit fault */

/* Authentication. */
#define AUTH_MAX_HEADER             16384
#define AUTH_MAX_USER               256
#define AUTH_MAX_PASSWORD           1024
#define AUTH_FAIL_DELAY_MS          2000          /* answer a failed login after this long */

/* IPC between monitor and worker. */
#define IPC_MAX_MSG                 (256 * 1024)
#define IPC_MAX_FDS                 4
#define IPC_MAX_STRING              (128 * 1024)
#define MON_MAX_LOGINS              4096          /* verified logins the monitor remembers */
#define MON_MAX_SESSIONS            8192
#define MON_AUTH_JOBS_MAX           (2 * HTTP_UNAUTH_PENDING_MAX) /* password-check children */
#define MON_DELAYED_REPLIES_MAX     1024          /* failed logins waiting out AUTH_FAIL_DELAY_MS */
#define MON_NTLM_CHALLENGES_MAX     4096          /* issued NTLM challenges not yet used */
#define MON_NTLM_CHALLENGE_TTL_MS   (HTTP_CONN_TIMEOUT_S * 1000ULL) /* a handshake's connection lives no longer */
#define MON_WORKER_RESTART_MIN_MS   1000          /* do not restart a crashing worker faster */

/* Shells, commands and PowerShell runspaces. */
#define SPAWN_MAX_ARGS              256           /* argv of a command the monitor starts */
#define SPAWN_MAX_ENV               256           /* client environment variables per shell */
/*
 * WinRS input, refused where it enters with a fault.  The Windows values
 * (32767: one environment variable, a \\?\ path, a CreateProcess command
 * line), and together small enough that an IPC_SPAWN always fits IPC_MAX_MSG.
 */
#define WINRS_MAX_ENV               128           /* Environment/Variable elements per shell */
#define WINRS_MAX_ENV_NAME          255
#define WINRS_MAX_ENV_VALUE         32767
#define WINRS_MAX_ENV_BLOCK         (64 * 1024)   /* all name=value strings of a shell */
#define WINRS_MAX_CWD               32767         /* WorkingDirectory */
#define WINRS_MAX_COMMAND_LINE      32767         /* Command plus Arguments */
#define CMD_STREAM_MAX              (1024 * 1024) /* buffered output per stream before back-pressure */
#define CMD_STDIN_MAX               (1024 * 1024) /* stdin queued before a Send is held back */
#define REPLY_OVERHEAD              2048          /* Receive envelope bytes around the streams */
#define SHELL_SWEEP_MS              1000          /* how often idle shells and expired waits are looked for */
#define PSRP_LINE_MAX               (16 * 1024 * 1024)  /* one out-of-process packet */
#define PSRP_BUFFER_MAX             (32 * 1024 * 1024)  /* output waiting for Receives, per shell */
#define PSRP_ERROR_TEXT_MAX         400           /* of a runspace's error, in its fault */
#define PSRP_CLOSE_WAIT_MS          5000          /* a deleted shell's runspace gets this long to close its pool, and then to exit */
#define PSRP_DRAINS_MAX             256           /* deleted shells waiting for that at once; more end at once */
#define PSRP_POOL_MSG_MAX           (64 * 1024)   /* pwsh's pool messages kept for Connect */

/* Configuration file. */
#define CONF_MAX_LINE               4096
#define CONF_MAX_LISTENERS          32
#define CONF_MAX_SESSIONS           64            /* session configurations */
#define CONF_MAX_CERTMAPS           64            /* [CertMapping] sections */
#define AUTH_MAX_CERT_CHAIN         8             /* client certificates passed to the monitor */
#define CONF_MAX_FILE               (1024 * 1024)
#define CONF_MAX_LIST               64            /* items in a list value such as AllowedGroups */
#define CONF_MAX_DUMP               IPC_MAX_STRING /* the effective configuration, sent in IPC_CONFIG */

/* TLS material handed to the worker. */
#define TLS_MAX_PEM                 (64 * 1024)

#endif
