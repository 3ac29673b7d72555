# superpose: one flat Makefile. Flags come from pkg-config; GSL is linked
# against OpenBLAS (never GSL's reference CBLAS, about 50x slower here).
CC      ?= cc
BUILD   ?= build
OPT     ?= -O3 -march=x86-64-v2 -mtune=native -fno-trapping-math -fno-math-errno
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-format-truncation
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(EXTRA_CFLAGS)
ifeq ($(WERROR),1)
CFLAGS  += -Werror
endif

PKGS     := gsl sqlite3 inih
OPENBLAS_LIBS := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
DEP_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEP_LIBS := $(filter-out -lgslcblas,$(shell pkg-config --libs $(PKGS) 2>/dev/null)) $(OPENBLAS_LIBS) -lm
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

CPPFLAGS += -Iinclude $(DEP_CFLAGS) -DSP_SOURCE_DIR='"$(CURDIR)"'

LIB_SRC  := $(wildcard src/*.c)
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
CLI_SRC  := $(wildcard src/cli/*.c)
CLI_OBJ  := $(CLI_SRC:src/cli/%.c=$(BUILD)/obj/cli/%.o)
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(TEST_SRC:tests/%.c=$(BUILD)/obj/tests/%.o)
LIB      := $(BUILD)/libsuperpose.a
BIN      := $(BUILD)/superpose
TESTBIN  := $(BUILD)/check_superpose

.PHONY: all deps test demo bench asan clean
all: $(BIN)

# Installs the Debian packages that are missing (as root), or says what to install.
deps:
	@sh src/deps.sh

$(BUILD)/obj/%.o: src/%.c $(wildcard include/superpose/*.h) | $(BUILD)/obj/cli
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@
$(BUILD)/obj/cli/%.o: src/cli/%.c $(wildcard include/superpose/*.h) | $(BUILD)/obj/cli
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@
$(BUILD)/obj/tests/%.o: tests/%.c $(wildcard include/superpose/*.h tests/*.h) | $(BUILD)/obj/tests
	$(CC) $(CPPFLAGS) $(CHECK_CFLAGS) $(CFLAGS) -Itests -c $< -o $@
# check_bench.c includes src/cli/bench.c for its static helpers.
$(BUILD)/obj/tests/check_bench.o: src/cli/bench.c src/cli/bench_ens.c src/cli/bench_ens.h
$(BUILD)/obj/cli $(BUILD)/obj/tests:
	mkdir -p $@

$(LIB): $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(CLI_OBJ) $(LIB) $(DEP_LIBS) -o $@
$(TESTBIN): $(TEST_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(TEST_OBJ) $(LIB) $(CHECK_LIBS) $(DEP_LIBS) -o $@

# The README's test command: installs what is missing, builds with -Werror, runs every Check suite.
test: deps
	$(MAKE) --no-print-directory WERROR=1 $(BIN) $(TESTBIN)
	OPENBLAS_NUM_THREADS=1 CK_DEFAULT_TIMEOUT=600 $(TESTBIN)

# The README's main command: the headline experiment at its quick preset, figures and all.
demo: deps
	$(MAKE) --no-print-directory $(BIN)
	$(BIN) run experiments/sharkey-recovery.ini --preset quick -j 2

bench: deps
	$(MAKE) --no-print-directory $(BIN)
	$(BIN) bench --markdown BENCHMARKS.md

# Address/undefined-behaviour sanitizer build of the tests, in its own folder.
asan: deps
	$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  EXTRA_CFLAGS='-fsanitize=address,undefined -fno-omit-frame-pointer' \
	  build-asan/check_superpose build-asan/superpose
	ASAN_OPTIONS=detect_leaks=1 OPENBLAS_NUM_THREADS=1 CK_FORK=no CK_DEFAULT_TIMEOUT=1200 build-asan/check_superpose

clean:
	rm -rf build build-asan
