# The README's two commands are `make demo` and `make test`; both fetch what they need on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/release/precisiond

.PHONY: demo test assets build clean-cache

build:
	$(CARGO) build --release --locked

# Real models, images and the Python judges (onnx, onnxruntime), fetched from PyPI into .cache/ and .venv/.
assets:
	bash scripts/fetch-assets.sh

test: assets
	$(CARGO) test --release --locked

demo: assets build
	bash scripts/demo.sh

clean-cache:
	rm -rf .cache .venv
