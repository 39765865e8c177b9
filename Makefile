# The README's two commands are `make demo` and `make test`; both fetch what they need on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/precisiond

.PHONY: demo test bench assets build clean-cache

build:
	$(CARGO) build --release --locked

# Real models, images and the Python judges (onnx, onnxruntime), fetched from PyPI into .cache/ and .venv/.
assets:
	bash scripts/fetch-assets.sh

# The assets, cargo test, then the Jetson binary and both packages checked (scripts/test.sh: the aarch64 build runs
# in the background at low priority meanwhile). The last line sums every check (CI reads the closing line).
test:
	bash scripts/test.sh

demo: assets build
	bash scripts/demo.sh

# Side-by-side measurements (see BENCHMARKS.md): precisiond against ONNX Runtime's quantize_static, and more.
bench: assets build
	bash scripts/bench.sh

clean-cache:
	rm -rf .cache .venv

# --- Jetson binary, packages, source install (cross/README.md, packaging/README.md) ---------------------------------
# Each target installs the tools it needs into .cache/tools (scripts/package-tools.sh): zig and cargo-zigbuild from
# PyPI, cargo-deb from crates.io, qemu-user-static, the aarch64 glibc and lintian unpacked from Debian's packages.
.PHONY: aarch64 deb install package-check
AARCH64_BIN := target/aarch64-unknown-linux-gnu/release/precisiond
PREFIX ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
INSTALL_BIN ?= $(BIN)

# target/aarch64-unknown-linux-gnu/release/precisiond for glibc >= 2.31 (JetPack 5, 6, 7), built here with zig.
aarch64:
	bash cross/build-aarch64.sh

# target/debian/precisiond_<version>-1_{amd64,arm64}.deb (cargo-deb from the two binaries built first).
deb: build aarch64
	bash packaging/build-deb.sh

# Source install: PREFIX (default /usr/local), DESTDIR, SYSCONFDIR; INSTALL_BIN=$(AARCH64_BIN) for a Jetson rootfs.
install:
	@if [ "$(INSTALL_BIN)" = "$(BIN)" ]; then $(MAKE) --no-print-directory build; fi
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" SYSCONFDIR="$(SYSCONFDIR)" BIN="$(INSTALL_BIN)" bash packaging/install.sh

# The Jetson binary (glibc, NEEDED, runs under qemu) and both packages (contents, unit, lintian).
package-check: deb assets
	bash scripts/check-aarch64.sh
	bash scripts/check-deb.sh
