# Social Flow: the two commands that matter are `make run` and `make test`.
SHELL := bash
CARGO ?= cargo

.PHONY: bench run test test-faults fuzz seed lint fmt fmt-check clippy build deps unit smoke monitoring drill help up down down-volumes images chart-rules deploy-check deploy-check-live

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: ## build and start the whole stack locally (Ctrl-C stops it)
	@scripts/dev-stack.sh

test: deps unit test-faults monitoring deploy-check smoke drill ## run every test: workspace, fault tests, monitoring and deploy checks, then the real stack end to end (with contract fuzzing)

# The long fault tests: processes stopped under load, dependencies gone for seconds. The
# `outages` and `shutdown` ones load the machine on purpose: they run one at a time after the
# others, not beside them (deadline tests count milliseconds).
FAULT_TESTS := binary(api) & (test(/^reliability::/) | test(/^shutdown::/) | test(/^outages::/))

unit: ## workspace tests (real Postgres, Redis and s3s-fs; no mocks), one process per test; the fault tests are `make test-faults`
	@if command -v cargo-nextest >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace -E 'not ($(FAULT_TESTS))'; \
	else \
		$(CARGO) test --workspace --all-targets --no-fail-fast -- --test-threads=1; \
	fi

test-faults: ## fault tests under load: SIGTERM to every process, Postgres stopped and started, Redis gone 30 s, deadlines, breakers, retries, shedding at 2x saturation
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace -E 'binary(api) & test(/^reliability::/)'
	$(CARGO) nextest run --workspace -E 'binary(api) & (test(/^outages::/) | test(/^shutdown::/))' --test-threads 1

fuzz: ## the smoke run with longer contract fuzzing (schemathesis, 1000 examples per operation)
	SMOKE_FUZZ_EXAMPLES=1000 scripts/smoke-run.sh

smoke: ## start the real binaries as `make run` does and check them from outside
	scripts/smoke-run.sh

monitoring: ## check monitoring/ offline (promtool, amtool, rule tests, dashboards)
	scripts/check-monitoring.sh

drill: ## alert drill: real stack + Prometheus + Alertmanager; an injected fault fires HighErrorRate, a stopped object store VideoUploadFailure; both resolve
	python3 scripts/alert-drill.py

bench: ## the performance suite on release builds: /health vs bare actix-web, the read path, writes, mixed, tracing cost, 2x overload, breaker fail-fast, memory, a 1 GiB upload (docs/performance.md)
	python3 scripts/bench.py

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

COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi)
COMPOSE_PROJECT ?= socialflow
PROFILE ?= full
IMAGE_REPO ?= socialflow
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
BINARIES := gateway user-service video-service engagement-service payments-service

up: ## start Social Flow in containers: PROFILE=full (default; Jaeger, Prometheus, Grafana...) or PROFILE=light
	$(if $(filter light,$(PROFILE)),SF_OTLP_ENDPOINT= ,)SOCIALFLOW_VERSION=$(IMAGE_TAG) \
		$(COMPOSE) -p $(COMPOSE_PROJECT) --profile $(PROFILE) up -d --build
	@printf 'waiting for the gateway'; \
	for i in $$(seq 1 120); do \
		if curl -fs -o /dev/null --max-time 2 http://127.0.0.1:8000/health/readiness; then \
			printf '\nSocial Flow is up: http://localhost:8000 (Grafana :3000, Jaeger :16686 with PROFILE=full; docs/deploy.md)\n'; exit 0; \
		fi; printf .; sleep 2; \
	done; printf '\nthe gateway is not ready after 4 minutes: $(COMPOSE) -p $(COMPOSE_PROJECT) ps\n'; exit 1

down: ## stop and remove the containers of `make up` (data volumes are kept)
	$(COMPOSE) -p $(COMPOSE_PROJECT) --profile full down --remove-orphans

down-volumes: ## `make down`, and delete the data volumes too
	$(COMPOSE) -p $(COMPOSE_PROJECT) --profile full down --remove-orphans --volumes

images: ## build the five images socialflow/<process>:<version> from deploy/docker/Dockerfile
	@for b in $(BINARIES); do \
		docker build -f deploy/docker/Dockerfile --target $$b -t $(IMAGE_REPO)/$$b:$(IMAGE_TAG) \
			--build-arg VERSION=$(IMAGE_TAG) \
			--build-arg REVISION="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
			--build-arg SOURCE="$$(git remote get-url origin 2>/dev/null || echo unknown)" \
			--build-arg CREATED="$$(date -u +%Y-%m-%dT%H:%M:%SZ)" . || exit 1; \
	done

chart-rules: ## copy monitoring/prometheus/rules/*.yml into the Helm chart (deploy/helm/socialflow/rules)
	python3 scripts/check-deploy.py --sync-rules

deploy-check: ## check compose, Dockerfile, Helm chart and docs/deploy.md against the code
	python3 scripts/check-deploy.py

deploy-check-live: ## probe paths/ports and `<binary> healthcheck` against a running `make run`
	python3 scripts/check-deploy.py --live
