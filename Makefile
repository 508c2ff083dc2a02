# Thin wrapper over CMake. The two commands a newcomer needs:
#   make serve   install what is missing, build, and run the server (bundled/auto model)
#   make test    install what is missing, build, and run every test (unit, e2e, sanitizer)
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=
PORT       ?= 8080

.PHONY: all deps test-deps build asan test unit e2e serve lint format clean bench

all: build

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

asan: test-deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMCLI_SANITIZE=ON -DMCLI_NATIVE=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# Every test: unit + e2e on the normal build, then the unit tests again under ASan+UBSan.
test: test-deps build asan
	cd $(BUILD) && ctest --output-on-failure -j 2
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -L unit -j 2

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

e2e: build
	cd $(BUILD) && ctest --output-on-failure -L e2e

serve: build
	$(BUILD)/mcli workflow model-service lightweight-run --auto --port $(PORT)

lint: test-deps
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --std=c11 -I src --suppress=missingIncludeSystem src

format:
	clang-format -i $$(find src tests bench -name '*.[ch]')

bench: build
	@scripts/install-deps.sh --bench
	/usr/bin/python3 bench/run.py
	/usr/bin/python3 bench/bench_http.py --mcli $(BUILD)/mcli

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
