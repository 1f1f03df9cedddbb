# Social Flow: the two commands that matter are `make run` and `make test`.
SHELL := bash
CARGO ?= cargo

.PHONY: run test seed lint fmt fmt-check clippy build deps unit smoke help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: ## build and start the whole stack locally (Ctrl-C stops it)
	@scripts/dev-stack.sh

test: deps unit smoke ## run every test: workspace tests, then the real stack end to end

unit: ## workspace tests (real Postgres, Redis and s3s-fs; no mocks), one process per test
	@if command -v cargo-nextest >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace; \
	else \
		$(CARGO) test --workspace --all-targets --no-fail-fast; \
	fi

smoke: ## start the real binaries as `make run` does and check them from outside
	scripts/smoke-run.sh

seed: ## load demo data into a running stack
	@scripts/seed.sh

lint: fmt-check clippy ## formatting and clippy, as CI runs them

fmt: ## format the code
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

build: ## build every binary
	$(CARGO) build --workspace --bins

deps: ## install what tests need beyond Postgres and Redis (s3s-fs, promtool)
	@scripts/install-test-deps.sh
