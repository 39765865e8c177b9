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

test: assets
	$(CARGO) test --release --locked

demo: assets build
	bash scripts/demo.sh

# Side-by-side measurements (see BENCHMARKS.md): precisiond against ONNX Runtime's quantize_static, and more.
bench: assets build
	bash scripts/bench.sh

clean-cache:
	rm -rf .cache .venv
