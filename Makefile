# Thin wrapper around CMake. `make run` and `make test` are the two commands of the README.
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
CLANG ?= clang

.PHONY: all build deps deps-build deps-deb test-tools run test test-asan test-fuzz lint bench clean deb test-deb image test-image deps-image

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

# the Debian package: build/deb/larder_<version>_amd64.deb, built by dpkg-buildpackage from a copy of the tree (the
# files git tracks or would track) in build/deb/src, so the source tree stays clean. See docs/install.md.
VERSION := $(shell sed -n 's/^\#define LARDER_VERSION "\(.*\)"/\1/p' appliance/admin.h)
DEB_VERSION := $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)

deps-deb: deps-build
	@./scripts/install-deps deb

deb: deps-deb
	@case "$(DEB_VERSION)" in $(VERSION)-*) ;; *) echo "debian/changelog says $(DEB_VERSION), the code $(VERSION)" >&2; exit 1;; esac
	@rm -rf build/deb/src && mkdir -p build/deb/src/larder-$(VERSION)
	@git ls-files -z --cached --others --exclude-standard | grep -zv "^build" | \
	  tar --null -T - -cf - | tar -xf - -C build/deb/src/larder-$(VERSION)
	cd build/deb/src/larder-$(VERSION) && dpkg-buildpackage -b -us -uc -j$(JOBS) >../../build.log 2>&1 || \
	  { tail -40 ../../build.log; exit 1; }
	@mv -f build/deb/src/larder_$(DEB_VERSION)_* build/deb/src/larder-dbgsym_$(DEB_VERSION)_* build/deb/ 2>/dev/null; true
	@rm -rf build/deb/src
	@ls -l build/deb/larder_$(DEB_VERSION)_$(DEB_ARCH).deb
	@lintian --fail-on error build/deb/larder_$(DEB_VERSION)_$(DEB_ARCH).deb || true

# installs the .deb into a fresh Debian bookworm root and runs it there under systemd (tests/integration/test_deb.sh)
test-deb: deb
	LARDER_DEB=$(CURDIR)/build/deb/larder_$(DEB_VERSION)_$(DEB_ARCH).deb bash tests/integration/test_deb.sh

# the appliance: build/image/larder.raw, a bootable Debian bookworm disk with the .deb installed (image/README.md).
# Needs root. The base root is cached under /var/tmp/larder-image-cache, so a rebuild takes about a minute.
deps-image: deps-deb
	@./scripts/install-deps image

image: deb deps-image
	nice ./image/build.sh --deb build/deb/larder_$(DEB_VERSION)_$(DEB_ARCH).deb --out build/image/larder.raw

# boots the image in qemu (TCG, or KVM when a probe boots with it) and checks it (tests/integration/test_image.sh,
# which runs `make image` itself unless LARDER_IMAGE names an image)
test-image: deps-image
	bash tests/integration/test_image.sh

# every comparison, alternating runs, then the one summary table (build/bench/summary.md); BENCH="files npm" for some
bench: build test-tools
	./bench/run-all.sh $(BENCH)

clean:
	rm -rf build build-asan build-fuzz
