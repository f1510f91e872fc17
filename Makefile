# winrmd - the one entry point: make, make run, make check, make install,
# make deb, make fuzz, make bench.  See README.md.

CC      ?= cc
PREFIX  ?= /usr
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
BUILD   ?= build
SANITIZE ?=

PKGS    := libmicrohttpd libxml-2.0 libcrypto libsystemd krb5-gssapi gnutls
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 \
	   -Wno-format-nonliteral -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE \
	   -Ilib -Imonitor -Iworker -Iendpoints -Iconfig $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS += -pie -Wl,-z,relro,-z,now
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpam

ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -U_FORTIFY_SOURCE
LDFLAGS += -fsanitize=address,undefined
# pam_unix loads libcrypt after ASan starts, leaving its crypt_r interceptor
# with nothing to call; linking libcrypt up front resolves it.
LDLIBS  += -Wl,--no-as-needed -lcrypt -Wl,--as-needed
BUILD   := build-san
endif

# The layout is the process model: monitor/ runs as root, worker/ and
# endpoints/ in the unprivileged worker, lib/ is protocol code both use.
COMMON_SRC := lib/log.c lib/util.c lib/ipc.c config/conf.c
PROTO_SRC  := lib/ntlm.c lib/ntstore.c lib/spnego.c lib/gss.c lib/encmsg.c lib/xpress.c lib/psrp_wire.c
MON_SRC    := monitor/main.c monitor/mon.c monitor/mon_state.c monitor/mon_listen.c monitor/mon_login.c \
	monitor/mon_session.c monitor/mon_worker.c monitor/mon_ctl.c monitor/mon_pam.c monitor/mon_spawn.c \
	monitor/mon_user.c monitor/mon_cert.c monitor/tls.c
WORKER_SRC := worker/worker.c worker/net.c worker/http.c worker/auth.c worker/auth_neg.c worker/seal.c \
	worker/soap.c worker/wsman.c worker/mm.c \
	endpoints/identify.c endpoints/config.c endpoints/shell.c endpoints/park.c endpoints/winrs.c \
	endpoints/psrp.c endpoints/psrp_runspace.c
DAEMON_SRC := $(COMMON_SRC) $(PROTO_SRC) $(MON_SRC) $(WORKER_SRC)
UNIT_SRC   := $(filter-out monitor/main.c,$(DAEMON_SRC)) tests/unit/unit.c

CTL_SRC    := $(COMMON_SRC) config/winrmctl.c lib/ntlm.c lib/ntstore.c
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(BUILD)/%.o)
CTL_OBJ    := $(CTL_SRC:%.c=$(BUILD)/%.o)
UNIT_OBJ   := $(UNIT_SRC:%.c=$(BUILD)/%.o)

all: $(BUILD)/winrmd $(BUILD)/winrmctl $(BUILD)/unit

$(BUILD)/%.o: %.c $(wildcard lib/*.h monitor/*.h worker/*.h endpoints/*.h config/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/winrmd: $(DAEMON_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/winrmctl: $(CTL_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit: $(UNIT_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	@sh tests/deps.sh build

check-deps:
	@sh tests/deps.sh check

run: deps all
	@sh tests/run-quickstart.sh $(BUILD)/winrmd

# Undo `make run`: the demo account, build/run/, and the TLS files if it made them.
run-clean:
	@sh tests/run-quickstart.sh --clean

unit: $(BUILD)/unit
	$(BUILD)/unit

# Both compilers must build warning-free.
check-clang:
	$(MAKE) --no-print-directory CC=clang BUILD=build-clang build-clang/winrmd

# Everything: both compilers, then tests/check.sh: unit tests, a short fuzz
# pass, and every suite this machine can run (core, pypi, pwsh; tests/deps.sh
# decides and says why), against the normal build and an ASan+UBSan build.
check: check-deps all check-clang
	sh tests/check.sh

# One suite against the sanitizer build: make check-san [SUITE=core].
SUITE ?= core
check-san:
	$(MAKE) --no-print-directory SANITIZE=1 all
	build-san/unit
	ASAN_OPTIONS=detect_leaks=0 WINRMD_SOAK_SECONDS=40 sh tests/integration/run.sh build-san $(SUITE)

# Every build directory: make, check-clang, SANITIZE=1, fuzz (tests/fuzz/fuzz.mk).
clean:
	rm -rf build build-clang build-san build-fuzz build-cov

.PHONY: all deps check-deps run run-clean unit check check-san check-clang clean

# libFuzzer harnesses (tests/fuzz/fuzz.mk): `make fuzz` runs each for FUZZ_SECONDS.
-include tests/fuzz/fuzz.mk

# unit.c includes the NTLM, XPRESS and IPC table tests.
$(BUILD)/tests/unit/unit.o: tests/unit/test_ntlm.c tests/unit/test_xpress.c tests/unit/test_ipc_table.c

# ---------------------------------------------------------------- install, deb, lint-man
# make install [DESTDIR=...] [PREFIX=/usr] [SYSCONFDIR=/etc]: binaries, scripts,
# man pages, systemd units, PAM file, sysusers/tmpfiles entries, ufw profile,
# and the default configuration (never over an existing one).
UNITDIR    ?= /lib/systemd/system
DATADIR    ?= $(PREFIX)/share/winrmd
LIBDIR_SD  ?= $(PREFIX)/lib
PAMFLAVOR  ?= $(if $(wildcard /etc/debian_version),debian,fedora)
DEB_DIR    := $(BUILD)/deb
DEB_VERSION = $(shell sed -n 's/^winrmd (\([^)]*\)).*/\1/p;q' packaging/debian/changelog)

install: $(BUILD)/winrmd $(BUILD)/winrmctl
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/pam.d $(DESTDIR)$(LIBDIR_SD)/sysusers.d \
		$(DESTDIR)$(LIBDIR_SD)/tmpfiles.d $(DESTDIR)$(SYSCONFDIR)/ufw/applications.d \
		$(DESTDIR)$(DATADIR) $(DESTDIR)$(SYSCONFDIR)/winrmd $(DESTDIR)$(SYSCONFDIR)/winrmd/sessions.d
	install -d -m 0700 $(DESTDIR)$(SYSCONFDIR)/winrmd/tls
	install -m 0755 $(BUILD)/winrmd $(BUILD)/winrmctl config/enable-remoting \
		config/disable-remoting $(DESTDIR)$(SBINDIR)/
	install -m 0644 man/*.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 packaging/systemd/winrmd.service packaging/systemd/winrmd.socket $(DESTDIR)$(UNITDIR)/
	sed -i 's#/usr/sbin/#$(SBINDIR)/#g' $(DESTDIR)$(UNITDIR)/winrmd.service
	install -m 0644 packaging/pam/winrmd.$(PAMFLAVOR) $(DESTDIR)$(SYSCONFDIR)/pam.d/winrmd
	install -m 0644 packaging/sysusers.d/winrmd.conf $(DESTDIR)$(LIBDIR_SD)/sysusers.d/winrmd.conf
	install -m 0644 packaging/tmpfiles.d/winrmd.conf $(DESTDIR)$(LIBDIR_SD)/tmpfiles.d/winrmd.conf
	install -m 0644 packaging/ufw/winrmd $(DESTDIR)$(SYSCONFDIR)/ufw/applications.d/winrmd
	install -m 0644 packaging/winrmd.conf $(DESTDIR)$(DATADIR)/winrmd.conf
	test -e $(DESTDIR)$(SYSCONFDIR)/winrmd/winrmd.conf || \
		install -m 0644 packaging/winrmd.conf $(DESTDIR)$(SYSCONFDIR)/winrmd/winrmd.conf

# make deb: a binary Debian package in $(BUILD)/deb/, built with debhelper
# from a copy of the tree (packaging/debian becomes debian/).
deb:
	@for p in debhelper dpkg-dev fakeroot; do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
		grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "make deb: installing$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	git ls-files -co --exclude-standard -z | grep -zv '^packaging/debian/' | \
		xargs -0 tar -cf - | tar -xf - -C $(DEB_DIR)/src
	cp -r packaging/debian $(DEB_DIR)/src/debian
	cd $(DEB_DIR)/src && dpkg-buildpackage -us -uc -b -rfakeroot
	@ls $(DEB_DIR)/*.deb

# Lint the man pages (mandoc warnings are errors).
lint-man:
	mandoc -Tlint -W warning man/*

.PHONY: install deb lint-man

# make bench: winrmd against nginx and OpenSSH on this machine (bench/run.sh,
# docs/PERFORMANCE.md); a measurement, never a test.
bench: all
	sh bench/run.sh $(BUILD)

.PHONY: bench
