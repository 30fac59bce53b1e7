# Every target sets up its own .venv first; `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-unit test-chaos services browser bench bench-budget bench-bus bench-observability bench-first-calls bench-graphs bench-injection bench-caching bench-submit bench-inflight bench-execution-models soak lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

## make demo: the example team end to end on real workers, an embedded Redis and SQLite
demo: $(STAMP)
	$(BIN)/agentyard demo

## make services: make sure Redis, PostgreSQL and RabbitMQ answer (starts or installs them if needed)
services:
	@bash .ci/services

## make browser: make sure the system's Chromium is there for the Flower browser test (installs it if needed)
browser:
	@bash .ci/browser

## make test: the whole suite on real Redis and PostgreSQL, Flower in a real browser
test: $(STAMP) services browser
	$(BIN)/python -m pytest

## make test-unit: the tests that need no server
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

## make test-chaos: only the chaos test (SIGKILLs and a Redis flush under 200 workflows); prints its counts
test-chaos: $(STAMP) services
	$(BIN)/python -m pytest -m chaos -s tests/system/test_chaos.py

## make bench: agentyard against plain Celery, same Redis, same worker processes, same run
bench: $(STAMP) services
	$(BIN)/python bench/overhead.py --floor

## make bench-budget: spend-cap reservations against plain INCR, on a redis-server of its own
bench-budget: $(STAMP) services
	$(BIN)/python bench/budget.py

## make bench-bus: messages per second through orc.bus against plain Celery send_task, same Redis, same workers
bench-bus: $(STAMP) services
	$(BIN)/python bench/bus.py

## make bench-observability: the step path with OpenTelemetry off and exporting over OTLP, same run
bench-observability: $(STAMP) services
	$(BIN)/python bench/observability.py

## make bench-first-calls: a fresh agent worker's first calls against its later ones, warm-up on and off
bench-first-calls: $(STAMP) services
	$(BIN)/python bench/first_calls.py

## make bench-graphs: a 1000-item fan-out against a Celery group, coordinator CPU per branch, a loop against a sequence
bench-graphs: $(STAMP) services
	$(BIN)/python bench/graphs.py

## make bench-caching: a 6-iteration loop's cost with prompt caching off and on, through the SDK to the stub
bench-caching: $(STAMP) services
	$(BIN)/python bench/caching.py

## make bench-submit: orc.submit_many against a loop of orc.submit, runs per second from one process
bench-submit: $(STAMP) services
	$(BIN)/python bench/submit.py

## make bench-inflight: the calls in flight one node keeps, at 16 to 1024 wanted, against the ideal
bench-inflight: $(STAMP) services
	$(BIN)/python bench/inflight.py

## make bench-execution-models: the SDK's call alone on threads against an event loop (AsyncAnthropic)
bench-execution-models: $(STAMP) services
	$(BIN)/python bench/execution_models.py

## make soak: 30 minutes of mixed workflows with a worker killed every minute (not part of make test)
soak: $(STAMP) services
	$(BIN)/python bench/soak.py

## make bench-injection: the injection guards on a corpus of attacks and look-alike benign texts
bench-injection: $(STAMP)
	$(BIN)/python bench/injection.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy orchestration bus storage workers

clean:
	rm -rf $(VENV) .agentyard .pytest_cache .mypy_cache .ruff_cache test-artifacts
