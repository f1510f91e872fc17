# tests/fuzz/fuzz.mk - libFuzzer harnesses, included by the top-level Makefile.
#
#   make fuzz-build          build build-fuzz/fuzz_<name> for every harness
#   make fuzz                run each for FUZZ_SECONDS (default 60)
#   make fuzz-short          the same for 10 s each (CI)
#   make fuzz-one FUZZ=soap  run one harness
#
# Harnesses run on a copy of their seed corpus in build-fuzz/corpus/<name>
# (new inputs accumulate there, never in tests/fuzz/corpus); crashes land in
# build-fuzz/artifacts/<name>/ and fail the make.  Needs clang with libFuzzer;
# no network, no root, no running daemon.

FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
FUZZ_NAMES   := soap conf basic b64 ipc ntlm spnego encmsg xpress psrp
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
# Same include paths and defines as CFLAGS; warnings shown but not fatal,
# optimisation low enough for useful stacks.  _FORTIFY_SOURCE fights ASan.
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Wall -Wextra \
	-Ilib -Imonitor -Iworker -Iendpoints -Iconfig $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_LIB_SRC := $(filter-out monitor/main.c,$(DAEMON_SRC))
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_BUILD)/obj/%.o: %.c $(wildcard lib/*.h monitor/*.h worker/*.h endpoints/*.h config/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c -o $@ $<

# An archive, so each harness links only the objects it needs.
$(FUZZ_BUILD)/libwinrmd.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libwinrmd.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< \
		$(FUZZ_BUILD)/libwinrmd.a $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

# Options per harness: the SOAP seeds are real requests of up to ~4 KiB.
FUZZ_OPTS_soap := -max_len=16384 -dict=tests/fuzz/soap.dict
FUZZ_OPTS_conf := -max_len=8192
FUZZ_OPTS_basic := -max_len=2048
FUZZ_OPTS_b64 := -max_len=4096
FUZZ_OPTS_ipc := -max_len=4096
FUZZ_OPTS_ntlm := -max_len=4096
FUZZ_OPTS_spnego := -max_len=4096
FUZZ_OPTS_encmsg := -max_len=4096
FUZZ_OPTS_xpress := -max_len=16384
FUZZ_OPTS_psrp := -max_len=8192

# $(1) = harness name.  -jobs/-workers write fuzz-N.log files; keep them in artifacts.
define fuzz_run
	@mkdir -p $(FUZZ_BUILD)/corpus/$(1) $(FUZZ_BUILD)/artifacts/$(1)
	@cp tests/fuzz/corpus/$(1)/* $(FUZZ_BUILD)/corpus/$(1)/
	@echo "fuzz: $(1) for $(FUZZ_SECONDS)s (log: $(FUZZ_BUILD)/artifacts/$(1)/run.log)"
	@cd $(FUZZ_BUILD)/artifacts/$(1) && if $(CURDIR)/$(FUZZ_BUILD)/fuzz_$(1) \
		$(subst -dict=,-dict=$(CURDIR)/,$(FUZZ_OPTS_$(1))) \
		-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		-artifact_prefix=$(CURDIR)/$(FUZZ_BUILD)/artifacts/$(1)/ \
		$(if $(filter-out 1,$(FUZZ_JOBS)),-jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS)) \
		$(CURDIR)/$(FUZZ_BUILD)/corpus/$(1) > run.log 2>&1; then \
		grep -E '^Done|stat::number_of_executed_units' run.log | head -2; \
	else tail -60 run.log; echo "fuzz: $(1) FAILED"; exit 1; fi
endef

# One after the other, so each gets the CPU for its FUZZ_SECONDS; the first
# crash stops the make.
fuzz: fuzz-build
	@for n in $(FUZZ_NAMES); do \
		$(MAKE) --no-print-directory fuzz-one FUZZ=$$n FUZZ_SECONDS=$(FUZZ_SECONDS) || exit 1; done
	@echo "fuzz: all harnesses ran $(FUZZ_SECONDS)s without a crash"

fuzz-short:
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10

fuzz-one: fuzz-build
	$(if $(filter $(FUZZ),$(FUZZ_NAMES)),,$(error FUZZ must be one of: $(FUZZ_NAMES)))
	$(call fuzz_run,$(FUZZ))

# Replay every saved crash input (tests/fuzz/crashes/<name>-*) once, with the
# strict checks on; prints each verdict, fails if any still crashes.
fuzz-crashes: fuzz-build
	@fail=0; for f in tests/fuzz/crashes/*-*; do \
		[ -f "$$f" ] || continue; n=$$(basename "$$f" | cut -d- -f1); \
		if FUZZ_STRICT_FAULT=1 $(FUZZ_BUILD)/fuzz_$$n "$$f" >/dev/null 2>&1; then \
			echo "fixed    $$f"; else echo "CRASHES  $$f"; fail=1; fi; done; exit $$fail

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

.PHONY: fuzz-build fuzz fuzz-short fuzz-one fuzz-crashes fuzz-clean

# The operation-sequence fuzzer of the shell handlers (tests/hostile/seqfuzz.py)
# against the real daemon: `make fuzz-seq` runs it for SEQFUZZ_SECONDS against
# the ASan+UBSan build (new seeds with new outcomes go into the corpus);
# `make fuzz-seq-cov` prints the gcov line coverage of the shell and PSRP endpoints it reaches.
SEQFUZZ_SECONDS ?= 600
fuzz-seq:
	$(MAKE) --no-print-directory SANITIZE=1 build-san/winrmd
	WINRMD_BIN=$(CURDIR)/build-san/winrmd ASAN_OPTIONS=detect_leaks=0 WINRMD_SUITE=core \
		WINRMD_SEQFUZZ_SECONDS=$(SEQFUZZ_SECONDS) WINRMD_SEQFUZZ_SAVE=1 \
		/usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/hostile/test_seqfuzz.py

fuzz-seq-cov:
	sh tests/hostile/seqfuzz-coverage.sh $(if $(filter 600,$(SEQFUZZ_SECONDS)),120,$(SEQFUZZ_SECONDS))

.PHONY: fuzz-seq fuzz-seq-cov
