# Thin wrapper around CMake. `make run` and `make test` are the two commands of the README.
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
CLANG ?= clang

.PHONY: all build deps deps-build test-tools run test test-asan test-fuzz lint bench clean

all: build

# what building and running need (`make run`, `make`)
deps-build:
	@./scripts/install-deps build

# everything: also the test peers and tools (nginx, apt-cacher-ng, docker-registry, ruby, clang, ...)
deps:
	@./scripts/install-deps

# verdaccio (the npm tests' upstream) and yarn 1 from the npm registry, pinned by tests/tools/package-lock.json
test-tools: deps
	@./scripts/install-test-tools

build: deps-build
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null
	@cmake --build build -j $(JOBS)

run: build
	./build/larder serve $(if $(CONFIG),--config $(CONFIG),)

# unit + integration tests on the release build, then all of them again under
# ASan/UBSan, then short libFuzzer runs of every fuzz target
test: deps build test-tools
	cd build && ctest --output-on-failure
	$(MAKE) test-asan test-fuzz lint

test-asan: deps test-tools
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLARDER_ASAN=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp ASAN_OPTIONS=detect_leaks=1 \
	  ctest --output-on-failure -L asan

test-fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=$(CLANG) -DCMAKE_BUILD_TYPE=Debug -DLARDER_FUZZ=ON -DLARDER_ASAN=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	cd build-fuzz && ctest --output-on-failure -L fuzz

# clang-tidy with the checks in .clang-tidy, warnings are errors
lint: build
	@cmake -S . -B build -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
	clang-tidy -p build --quiet --warnings-as-errors='*' $(wildcard appliance/*.c protocols/*.c protocols/*/*.c)

bench: build test-tools
	./bench/files.sh
	./bench/pypi.sh
	./bench/npm.sh
	./bench/apt.sh
	./bench/oci.sh
	./bench/gems.sh
	./bench/git.sh

clean:
	rm -rf build build-asan build-fuzz
