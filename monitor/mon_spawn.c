/*
 * mon_spawn.c - start a runspace process as the session's user (monitor;
 * the child part runs in the new process until execve).
 *
 * The order follows sshd: fork; in the child a new session (its own process
 * group, so signals reach the whole command), initgroups, pam_setcred,
 * setresgid/setresuid and a check that none can be undone, a clean
 * environment, the user's home or the requested directory, no inherited
 * descriptors, then execve.  The parent keeps only the pipe ends and hands
 * them to the worker.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "conf.h"
#include "log.h"
#include "mon.h"
#include "util.h"

/*
 * A Windows host answers `powershell` on the PATH of every WinRM process, and
 * tools rely on it: Ansible's winrm connection runs `PowerShell -EncodedCommand`
 * inside the PowerShell it started.  Linux calls the program pwsh, so the
 * monitor keeps links by the Windows names in MON_COMPAT_DIR, last on the
 * runspaces' PATH so that any real program of the same name comes first.
 */
static const char *const compat_names[] = { "powershell", "PowerShell", "powershell.exe" };
static bool compat_ready;

static int compat_link(const char *target, const char *name)
{
	char *path = xasprintf("%s/%s", MON_COMPAT_DIR, name);
	char *tmp = xasprintf("%s/.%s.%ld", MON_COMPAT_DIR, name, (long)getpid());
	int r = 0;

	/* symlink + rename: daemons that share the directory never see it half done. */
	unlink(tmp);
	if (symlink(target, tmp) < 0 || rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
	}
	free(path);
	free(tmp);
	return r;
}

void mon_compat_refresh(void)
{
	const char *pwsh = conf_pwsh_path();
	struct stat st;
	int r = 0;

	compat_ready = false;
	if (mkdir(MON_COMPAT_DIR, 0755) < 0 && errno != EEXIST) {
		log_warn_errno(errno, "%s", MON_COMPAT_DIR);
		return;
	}
	/* Only root can write /run; still, never follow a link or trust another owner. */
	if (lstat(MON_COMPAT_DIR, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 022)) {
		log_warn("%s is not a root-owned directory: no 'powershell' on the runspaces' PATH",
		    MON_COMPAT_DIR);
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(compat_names); i++) {
		char *path = xasprintf("%s/%s", MON_COMPAT_DIR, compat_names[i]);
		if (pwsh)
			r = compat_link(pwsh, compat_names[i]);
		else if (unlink(path) < 0 && errno != ENOENT)
			r = -errno;
		free(path);
		if (r < 0) {
			log_warn_errno(-r, "%s/%s", MON_COMPAT_DIR, compat_names[i]);
			return;
		}
	}
	compat_ready = pwsh != NULL;
}

/* Variables a client may not set: identity, and anything that loads code. */
static const char *const env_deny_exact[] = {
	"HOME", "USER", "LOGNAME", "SHELL", "MAIL", "IFS", "ENV", "BASH_ENV", "SHELLOPTS",
	"BASHOPTS", "PS4", "GCONV_PATH", "GETCONF_DIR", "HOSTALIASES", "LOCALDOMAIN",
	"LOCPATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR",
	"GLIBC_TUNABLES", "NIS_PATH", "XDG_RUNTIME_DIR", "XDG_SESSION_ID", "KRB5CCNAME",
	"SSH_AUTH_SOCK", "PYTHONSTARTUP", "PERL5OPT", "NODE_OPTIONS", "DOTNET_STARTUP_HOOKS",
};
static const char *const env_deny_prefix[] = {
	"LD_", "DYLD_", "MALLOC_", "BASH_FUNC_", "WINRMD_", "PAM_", "CORECLR_", "COMPlus_",
};

static bool env_name_ok(const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t n;

	if (!eq || eq == kv)
		return false;
	n = (size_t)(eq - kv);
	if (n > 255 || strlen(eq + 1) > 32767)
		return false;
	if (!((kv[0] >= 'A' && kv[0] <= 'Z') || (kv[0] >= 'a' && kv[0] <= 'z') || kv[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = kv[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	for (size_t i = 0; i < ARRAY_SIZE(env_deny_exact); i++)
		if (strlen(env_deny_exact[i]) == n && !strncmp(kv, env_deny_exact[i], n))
			return false;
	for (size_t i = 0; i < ARRAY_SIZE(env_deny_prefix); i++)
		if (!strncmp(kv, env_deny_prefix[i], strlen(env_deny_prefix[i])))
			return false;
	return true;
}

/* Replace or add name=value in a NULL-terminated vector of at most max entries. */
static void env_set(char **env, size_t *n, size_t max, const char *kv)
{
	size_t nl = (size_t)(strchr(kv, '=') - kv) + 1;

	for (size_t i = 0; i < *n; i++)
		if (!strncmp(env[i], kv, nl)) {
			env[i] = (char *)kv;
			return;
		}
	if (*n + 1 < max) {
		env[(*n)++] = (char *)kv;
		env[*n] = NULL;
	}
}

static _Noreturn void child_fail(const char *what)
{
	char msg[512];
	int n = snprintf(msg, sizeof msg, "winrmd: cannot start the command: %s: %s\n", what,
	    strerror(errno));
	if (n > 0)
		(void)!write(STDERR_FILENO, msg, (size_t)n);
	_exit(126);
}

static _Noreturn void child(struct mon_session *s, const char *cwd, char **argv,
    char **client_env, char *const *own_env, unsigned long long mem_limit, int in[2], int out[2],
    int err[2])
{
	char *env[512];
	size_t n = 0;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	sigset_t all;
	char path[] = "PATH=/usr/local/bin:/usr/bin:/bin";
	char rootpath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	char path_compat[] = "PATH=/usr/local/bin:/usr/bin:/bin:" MON_COMPAT_DIR;
	char rootpath_compat[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:"
	    MON_COMPAT_DIR;

	/* Signals were blocked for sd-event in the monitor; the user gets defaults. */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);

	if (setsid() < 0)
		child_fail("setsid");
	if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
		_exit(126);
	if (close_range(3, ~0U, 0) < 0)
		for (int fd = 3; fd < 65536; fd++)
			close(fd);

	if (initgroups(s->user, s->gid) < 0)
		child_fail("initgroups");
	/* PAM credentials may add groups; initgroups above reset them. */
	if (s->pamh)
		pam_setcred(s->pamh, PAM_ESTABLISH_CRED | PAM_SILENT);
	if (setresgid(s->gid, s->gid, s->gid) < 0)
		child_fail("setresgid");
	if (setresuid(s->uid, s->uid, s->uid) < 0)
		child_fail("setresuid");
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != s->uid || eu != s->uid || su != s->uid ||
	    rg != s->gid || eg != s->gid || sg != s->gid)
		_exit(126);
	if (s->uid != 0 && (setuid(0) != -1 || seteuid(0) != -1))
		_exit(126);     /* the drop must not be reversible */

	env[0] = NULL;
	for (char **e = s->pam_env; e && *e; e++)
		env_set(env, &n, ARRAY_SIZE(env), *e);
	if (compat_ready)
		env_set(env, &n, ARRAY_SIZE(env), s->uid == 0 ? rootpath_compat : path_compat);
	else
		env_set(env, &n, ARRAY_SIZE(env), s->uid == 0 ? rootpath : path);
	env_set(env, &n, ARRAY_SIZE(env), xasprintf("HOME=%s", s->home));
	env_set(env, &n, ARRAY_SIZE(env), xasprintf("USER=%s", s->user));
	env_set(env, &n, ARRAY_SIZE(env), xasprintf("LOGNAME=%s", s->user));
	env_set(env, &n, ARRAY_SIZE(env), xasprintf("SHELL=%s", s->shell));
	if (!getenv("LANG"))
		env_set(env, &n, ARRAY_SIZE(env), "LANG=C.UTF-8");
	for (char **e = client_env; e && *e; e++)
		if (env_name_ok(*e))
			env_set(env, &n, ARRAY_SIZE(env), *e);
	for (char *const *e = own_env; e && *e; e++)
		env_set(env, &n, ARRAY_SIZE(env), *e);

	if (cwd && *cwd) {
		if (chdir(cwd) < 0)
			child_fail(cwd);
	} else if (chdir(s->home) < 0 && chdir("/") < 0) {
		child_fail("chdir");
	}
	/* Last, so nothing of ours runs under the user's address-space limit. */
	if (mem_limit) {
		struct rlimit rl = { mem_limit, mem_limit };
		setrlimit(RLIMIT_AS, &rl);
	}
	execve(argv[0], argv, env);
	child_fail(argv[0]);
}

/*
 * What wsmprovhost gives a runspace and pwsh's server mode does not.  A
 * -Command given to pwsh -s/-sshs runs in each runspace before the client's
 * first pipeline; this one, in a script block of its own so that it leaves
 * no variables behind, does two things:
 *
 * 1. Children must not share the transport.  pwsh reads packets from fd 0
 *    and writes them to fd 1, and every process it starts without
 *    redirection (Start-Process -NoNewWindow, a native command it does not
 *    feed) inherits both: one that reads stdin takes the client's packets,
 *    one that writes more than a pipe buffer can tear pwsh's.  By now pwsh
 *    reads and writes through its own close-on-exec duplicates (.NET's
 *    Console.OpenStandardInput/Out dup the descriptors), so fds 0 and 1 are
 *    pointed at /dev/null, once per process, through a dup2 P/Invoke made
 *    with Reflection.Emit (Add-Type would start a compiler).  wsmprovhost's
 *    children see no transport either.
 * 2. $PSSenderInfo: pwsh has an empty user and no configuration name (it
 *    has no WinRM to ask, OutOfProcServerMediator.cs); wsmprovhost fills
 *    both from WinRM, with the URL the client addressed as ConnectionString
 *    (pwsh says http://localhost).  The variable is replaced from what the
 *    monitor put in the environment (never from text it was given: the
 *    values are data, not code).  The client's ApplicationArguments (its PSVersionTable) are
 *    carried over.
 */
const char mon_pwsh_init_script[] =
	"& { "
	"try { "
	"$d = [AppDomain]::CurrentDomain; "
	"if ($null -eq $d.GetData('winrmd.stdio')) { "
	"$d.SetData('winrmd.stdio', 1); "
	"$b = [Reflection.Emit.AssemblyBuilder]::DefineDynamicAssembly([Reflection.AssemblyName]::new('winrmd'), 'Run')"
	".DefineDynamicModule('winrmd').DefineType('winrmd'); "
	"[void]$b.DefinePInvokeMethod('dup2', 'libc', 'Public,Static,PinvokeImpl', 'Standard', [int], "
	"[type[]]@([int], [int]), 'Winapi', 'Auto'); "
	"$c = $b.CreateType(); "
	"$h = [IO.File]::OpenHandle('/dev/null', 'Open', 'ReadWrite'); "
	"$fd = [int]$h.DangerousGetHandle(); "
	"[void]$c::dup2($fd, 0); [void]$c::dup2($fd, 1); $h.Dispose() "
	"} "
	"} catch { } "
	"try { "
	"$t = [System.Management.Automation.Remoting.PSSenderInfo]; "
	"$id = [System.Management.Automation.Remoting.PSIdentity]::new('', $true, $env:WINRMD_CONNECTED_USER, $null); "
	"$u = $env:WINRMD_CONNECTION_STRING; if (-not $u) { $u = $PSSenderInfo.ConnectionString }; "
	"$n = $t::new([System.Management.Automation.Remoting.PSPrincipal]::new($id, $null), $u); "
	"$t.GetProperty('ApplicationArguments').SetValue($n, $PSSenderInfo.ApplicationArguments); "
	"$t.GetProperty('ConfigurationName').SetValue($n, $env:WINRMD_CONFIGURATION_NAME); "
	"Set-Variable -Name PSSenderInfo -Value $n -Scope Global -Option ReadOnly -Force "
	"} catch { } "
	"}";

static bool switch_is(const char *arg, const char *name, size_t min)
{
	size_t n;

	while (*arg == '-' || *arg == '/')
		arg++;
	n = strlen(arg);
	return n >= min && n <= strlen(name) && strncasecmp(arg, name, n) == 0;
}

/*
 * Does this Command run pwsh's server mode with nothing of its own to run?
 * Then the monitor adds -Command mon_pwsh_init_script.  pwsh takes
 * unambiguous prefixes of its switches; -Command must come last.
 */
bool mon_pwsh_server_argv(char *const *argv, size_t argc)
{
	bool server = false;

	for (size_t i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (switch_is(a, "s", 1) || switch_is(a, "sshs", 4) || switch_is(a, "servermode", 3) ||
		    switch_is(a, "sshservermode", 2))
			server = true;
		else if (switch_is(a, "command", 1) || switch_is(a, "encodedcommand", 1) ||
		    switch_is(a, "ec", 2) || switch_is(a, "file", 1) || switch_is(a, "configurationfile", 6))
			return false;
	}
	return server;
}

int mon_spawn(struct mon_session *s, const char *cwd, char **argv, char **client_env,
    char *const *own_env, unsigned long long mem_limit, pid_t *pid, int fds[3])
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	pid_t p;

	if (!argv || !argv[0] || argv[0][0] != '/')
		return -EINVAL;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		goto fail;
	p = fork();
	if (p < 0)
		goto fail;
	if (p == 0)
		child(s, cwd, argv, client_env, own_env, mem_limit, in, out, err);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	*pid = p;
	fds[0] = in[1];
	fds[1] = out[0];
	fds[2] = err[0];
	s->nchildren++;
	return 0;
fail:;
	int e = -errno;
	close_safe(&in[0]); close_safe(&in[1]);
	close_safe(&out[0]); close_safe(&out[1]);
	close_safe(&err[0]); close_safe(&err[1]);
	return e;
}
