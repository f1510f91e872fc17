# winrmd - the one entry point: make, make run, make check, make install,
# make deb, make fuzz, make bench.  See README.md.

CC      ?= cc
PREFIX  ?= /usr
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
BUILD   ?= build
SANITIZE ?=

PKGS    := libmicrohttpd libxml-2.0 libcrypto libsystemd
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 \
	   -Wno-format-nonliteral -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE \
	   -Idaemon -Iconfig $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS += -pie -Wl,-z,relro,-z,now
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpam

ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -U_FORTIFY_SOURCE
LDFLAGS += -fsanitize=address,undefined
BUILD   := build-san
endif

COMMON_SRC := daemon/log.c daemon/util.c daemon/ipc.c config/conf.c
DAEMON_SRC := $(COMMON_SRC) daemon/main.c daemon/mon.c daemon/mon_pam.c daemon/mon_spawn.c \
	daemon/mon_user.c daemon/tls.c daemon/net.c daemon/http.c daemon/auth.c daemon/soap.c \
	daemon/wsman.c daemon/encmsg.c daemon/auth_neg.c daemon/ntlm.c daemon/spnego.c \
	daemon/ntstore.c endpoints/identify.c endpoints/config.c endpoints/shell.c
UNIT_SRC   := $(filter-out daemon/main.c,$(DAEMON_SRC)) tests/unit/unit.c

CTL_SRC    := $(COMMON_SRC) config/winrmctl.c daemon/ntlm.c daemon/ntstore.c
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(BUILD)/%.o)
CTL_OBJ    := $(CTL_SRC:%.c=$(BUILD)/%.o)
UNIT_OBJ   := $(UNIT_SRC:%.c=$(BUILD)/%.o)

all: $(BUILD)/winrmd $(BUILD)/winrmctl $(BUILD)/unit

$(BUILD)/%.o: %.c $(wildcard daemon/*.h config/*.h)
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

unit: $(BUILD)/unit
	$(BUILD)/unit

# Both compilers must build warning-free.
check-clang:
	$(MAKE) --no-print-directory CC=clang BUILD=build-clang build-clang/winrmd

check: check-deps all check-clang
	$(BUILD)/unit
	sh tests/integration/run.sh $(BUILD)

clean:
	rm -rf build build-clang build-san

.PHONY: all deps check-deps run unit check check-clang clean

# libFuzzer harnesses (tests/fuzz/fuzz.mk): `make fuzz` runs each for FUZZ_SECONDS.
-include tests/fuzz/fuzz.mk

# unit.c includes the NTLM tests.
$(BUILD)/tests/unit/unit.o: tests/unit/test_ntlm.c
