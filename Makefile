# Robofleet: the two commands a new user runs are `make dev` and `make test`.
# Both install what they need (a Python venv with pinned tools, mosquitto) on a fresh machine
# that has only the Rust toolchain and Python.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV          ?= .venv
CHECKOV_VENV  ?= .venv-checkov
PYTHON        ?= python3
export SAM_CLI_TELEMETRY := 0

# `make dev` knobs
DEV_ROBOTS   ?= 20
DEV_DURATION ?= 2m
DEV_REPORT   ?= .run/robofleet-dev.json
SIM_REPORT   ?= .run/sim-report.json

.PHONY: help
help:
	@echo "make dev     install what is missing, run the whole pipeline locally with a simulated fleet"
	@echo "make test    install what is missing, start moto + osmem, run every test and the template lints"
	@echo "make lint    cargo fmt --check, clippy -D warnings, and cargo-machete (unused dependencies)"
	@echo "make build   arm64 bootstrap for every function (sam build, offline)"
	@echo "make bench   criterion benches per function + the whole-function bench (JSON in target/bench)"
	@echo "make fuzz    cargo-fuzz over the decoders of robot input, 10M inputs (nightly; tools/fuzz.sh)"
	@echo "make venv    only create/refresh the Python venvs"

# ---------------------------------------------------------------------------------------------
# Tools

$(VENV)/.installed: tools/requirements.txt
	@echo "==> python venv $(VENV) (aws-sam-cli, cfn-lint, cargo-lambda, ziglang, moto, osmem-server)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	@touch $@

$(CHECKOV_VENV)/.installed: tools/requirements-checkov.txt
	@echo "==> python venv $(CHECKOV_VENV) (checkov: its pins clash with aws-sam-cli's)"
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-checkov.txt
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed $(CHECKOV_VENV)/.installed

.PHONY: mosquitto
mosquitto:
	@command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { \
	  echo "==> installing mosquitto (apt)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq mosquitto mosquitto-clients >/dev/null; }

# ---------------------------------------------------------------------------------------------
# Test

.PHONY: test
test: venv mosquitto
	@tools/test.sh

# cargo-machete finds dependencies no code uses; it is built once into .tools/ (pinned).
MACHETE := .tools/bin/cargo-machete
$(MACHETE):
	cargo install cargo-machete --version 0.9.2 --locked --root .tools

# Not part of `make test`: nightly, minutes; docs/fuzzing.md.
.PHONY: fuzz
fuzz:
	@tools/fuzz.sh

.PHONY: lint
lint: $(MACHETE)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(MACHETE)
	$(PYTHON) tools/lint_bash32.py

# ---------------------------------------------------------------------------------------------
# Run

.PHONY: dev
dev: $(VENV)/.installed
	@mkdir -p .run
	cargo run -q -p robofleet-cli -- dev --venv $(abspath $(VENV)) \
	  --workload sim --robots $(DEV_ROBOTS) --duration $(DEV_DURATION) --report $(DEV_REPORT) \
	  --sim-arg=--verify --sim-arg=--duplicates=5 --sim-arg=--reorders=20 --sim-arg=--malformed=2 \
	  --sim-arg=--disconnects=5 --sim-arg=--report=$(SIM_REPORT)

.PHONY: build
build: $(VENV)/.installed
	tools/build-arm64.sh

.PHONY: bench
bench: $(VENV)/.installed
	tools/bench.sh
