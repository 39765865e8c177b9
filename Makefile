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

# The last line sums every test binary's results (CI reads the closing line).
test: assets
	set -o pipefail; $(CARGO) test --release --locked 2>&1 | tee .cache/test.log
	@awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($$(i+1) ~ /^passed/) p += $$i; if ($$(i+1) ~ /^failed/) f += $$i } } END { printf "summary: %d passed, %d failed\n", p, f }' .cache/test.log

demo: assets build
	bash scripts/demo.sh

# Side-by-side measurements (see BENCHMARKS.md): precisiond against ONNX Runtime's quantize_static, and more.
bench: assets build
	bash scripts/bench.sh

clean-cache:
	rm -rf .cache .venv
