# gort — GNU make, no configure step.
#
#   make                 build/libgort.so, build/libgort.a, build/gort.pc
#   make test            the whole suite (plain, UBSan, TSan), ends "N passed, N failed"
#   make run             the main job (see README): the benchmark runner, quick
#   make bench           the full benchmark: docs/bench/RESULTS.md and charts
#   make install PREFIX=/usr/local
#
# Flavours: FLAVOR=ubsan or FLAVOR=tsan builds into build/<flavor>/.

PREFIX  ?= /usr/local
CC      ?= cc
CXX     ?= c++
FLAVOR  ?=

BUILD   := build$(if $(FLAVOR),/$(FLAVOR))
VERSION := 0.1.0

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wno-unused-parameter
OPT     ?= -O2 -g
# The allocator must not let the compiler turn its own code into calls to
# malloc/calloc/memset-to-calloc: -fno-builtin for the library itself.
LIBFLAGS := -std=gnu11 $(OPT) $(WARN) -fPIC -pthread -fvisibility=hidden \
            -fno-semantic-interposition -ftls-model=initial-exec \
            -fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc \
            -fno-builtin-free -Iinclude -Isrc
TESTFLAGS := -std=gnu11 $(OPT) $(WARN) -Wno-missing-prototypes -pthread -Iinclude -Isrc

ifeq ($(FLAVOR),ubsan)
  SAN := -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif
ifeq ($(FLAVOR),tsan)
  # TSan owns malloc itself: gort keeps only its gort_* names here, and only
  # the tests that speak gort_* directly are run.
  SAN := -fsanitize=thread -DGORT_NO_LIBC_NAMES
  CC  := clang
  CXX := clang++
  WARN += -Wno-unknown-warning-option
endif
LIBFLAGS  += $(SAN)
TESTFLAGS += $(SAN)

ARCH    := $(shell uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')
LIB_SRC := $(sort $(wildcard src/*/*.c))
LIB_ASM := src/sched/asm_$(ARCH).S
LIB_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC)) \
           $(patsubst src/%.S,$(BUILD)/obj/%.o,$(LIB_ASM))
LIB_HDR := $(wildcard src/*/*.h) include/gort.h

TEST_SRC  := $(sort $(wildcard tests/*.c))
TEST_CXX  := $(sort $(wildcard tests/*.cc))
TEST_BIN  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC)) \
             $(patsubst tests/%.cc,$(BUILD)/tests/%,$(TEST_CXX))
EXAMPLE_SRC := $(sort $(wildcard examples/*.c))
EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))

.PHONY: all lib test test-plain test-ubsan test-tsan run bench install uninstall clean examples

all: lib examples

lib: $(BUILD)/libgort.so $(BUILD)/libgort.a $(BUILD)/gort.pc

$(BUILD)/obj/%.o: src/%.c $(LIB_HDR) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(LIBFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: src/%.S Makefile
	@mkdir -p $(dir $@)
	@echo "  AS    $<"
	@$(CC) $(filter-out -fsanitize=%,$(LIBFLAGS)) -c $< -o $@

$(BUILD)/libgort.so: $(LIB_OBJ)
	@echo "  LD    $@"
	@$(CC) $(LIBFLAGS) -shared -Wl,-soname,libgort.so -Wl,-z,now -o $@ $(LIB_OBJ)

$(BUILD)/libgort.a: $(LIB_OBJ)
	@rm -f $@
	@echo "  AR    $@"
	@ar rcs $@ $(LIB_OBJ)

$(BUILD)/gort.pc: gort.pc.in Makefile
	@mkdir -p $(dir $@)
	@sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# Tests link the static library, so the test binary itself defines malloc and
# every library it loads allocates from gort, exactly as a -lgort program does.
$(BUILD)/tests/%: tests/%.c tests/check.h tests/child.h $(BUILD)/libgort.a
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(TESTFLAGS) $< -o $@ $(BUILD)/libgort.a -lm

$(BUILD)/tests/%: tests/%.cc tests/check.h $(BUILD)/libgort.a
	@mkdir -p $(dir $@)
	@echo "  CXX   $<"
	@$(CXX) -std=gnu++17 $(OPT) -Wall -Wextra -Werror -pthread -Iinclude $(SAN) $< -o $@ $(BUILD)/libgort.a

$(BUILD)/examples/%: examples/%.c $(BUILD)/libgort.a
	@mkdir -p $(dir $@)
	$(CC) $(TESTFLAGS) $< -o $@ $(BUILD)/libgort.a -lm

examples: $(EXAMPLE_BIN)

test-plain: lib $(TEST_BIN) examples
	@tests/run.sh $(BUILD) plain

test-ubsan:
	@$(MAKE) --no-print-directory FLAVOR=ubsan lib
	@$(MAKE) --no-print-directory FLAVOR=ubsan $(patsubst build/%,build/ubsan/%,$(filter build/tests/%,$(patsubst tests/%.c,build/tests/%,$(TEST_SRC))))
	@tests/run.sh build/ubsan ubsan

test-tsan:
	@$(MAKE) --no-print-directory FLAVOR=tsan lib
	@$(MAKE) --no-print-directory FLAVOR=tsan $(patsubst tests/%.c,build/tsan/tests/%,$(shell grep -l 'gort-test: tsan' tests/*.c))
	@tests/run.sh build/tsan tsan

# The whole suite: every flavour, one summary line at the end.
test:
	@scripts/deps.sh test
	@rm -f build/.results
	@$(MAKE) --no-print-directory test-plain
	@$(MAKE) --no-print-directory test-ubsan
	@$(MAKE) --no-print-directory test-tsan
	@tests/summary.sh build/.results

run:
	@scripts/deps.sh run
	@$(MAKE) --no-print-directory lib examples
	@examples/run.sh $(BUILD)

# The full comparison with glibc, jemalloc, tcmalloc and mimalloc (15-30 min):
# writes docs/bench/RESULTS.md, time.png and rss.png. BENCH_ARGS passes
# options to bench/run.py (see docs/bench/README-runner.md).
bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory lib
	@python3 bench/run.py --build $(BUILD) --via "make bench" $(BENCH_ARGS)

install: lib
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/libgort.so $(DESTDIR)$(PREFIX)/lib/libgort.so
	install -m 644 $(BUILD)/libgort.a $(DESTDIR)$(PREFIX)/lib/libgort.a
	install -m 644 include/gort.h $(DESTDIR)$(PREFIX)/include/gort.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' gort.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/gort.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libgort.so $(DESTDIR)$(PREFIX)/lib/libgort.a \
	      $(DESTDIR)$(PREFIX)/include/gort.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/gort.pc

clean:
	rm -rf build

# The goroutine scheduler against Go's (bench/sched/run.py, about 3 min):
# writes docs/bench/SCHED.md and sched.png; installs golang-go and gnuplot
# as root when missing.  BENCH_ARGS=--quick: under a minute, into
# build/bench-sched/quick/.
.PHONY: bench-sched
bench-sched:
	@$(MAKE) --no-print-directory lib
	@python3 bench/sched/run.py --build $(BUILD) --via "make bench-sched" $(BENCH_ARGS)

# The collector against Go's and the Boehm GC's (bench/gc/run.py, about
# 20 min): writes docs/bench/GC.md and gc.png; installs golang-go,
# libgc-dev and gnuplot as root when missing.  BENCH_ARGS=--quick: about
# a minute, into build/bench-gc/quick/; --gort-mode=stw measures gort with
# the world stopped for marking (docs/bench/GC-stw.md, with --out).
.PHONY: bench-gc
bench-gc:
	@$(MAKE) --no-print-directory lib
	@python3 bench/gc/run.py --build $(BUILD) --via "make bench-gc" $(BENCH_ARGS)
