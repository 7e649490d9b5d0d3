# make run:  serve the API and admin on 127.0.0.1:8000 and run a Celery worker (Ctrl-C stops both);
#            the demo API key it prints is kept in var/demo-api-key (owner-only) across restarts.
# make test: install the dev requirements and what the machine lacks for the tests (make check), then
#            run the whole suite (make suite), then each separate extra's tests in its own venv
#            (make test-extra, below). The fixtures install nothing.
# make test-extra EXTRA=<name>: an optional framework whose library cannot share the dev venv
#            (README, "Frameworks") gets a venv of its own, .venv-<name> (requirements.txt,
#            requirements/test.txt and requirements/<name>.txt; built once, rebuilt when they
#            change), and runs only its tests there: tests/extras/<name>/. make test-extras runs
#            every such extra (each directory under tests/extras/).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# make test's processes: the live tests take one, the rest of the suite the other (tests/conftest.py).
PYTEST_WORKERS ?= 2

# The extras tested in venvs of their own: the directories under tests/extras/.
SEPARATE_EXTRAS := $(filter-out __pycache__,$(notdir $(patsubst %/,%,$(wildcard tests/extras/*/))))

.PHONY: run test check suite lint format bench clean vendor test-extra test-extras

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(wildcard requirements/*.txt) $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $(VENV)/.installed $@

run: export DJANGO_DEBUG ?= 1
run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py ensure_demo --url http://$(HOST):$(PORT)
	@echo "serving on http://$(HOST):$(PORT) with a Celery worker; Ctrl-C stops both"
	$(BIN)/python manage.py serve $(HOST):$(PORT)

# The separate extras make test runs after the suite (TEST_EXTRAS= for none: CI's second pass).
TEST_EXTRAS ?= $(SEPARATE_EXTRAS)

test: check
	$(MAKE) --no-print-directory suite
	@for extra in $(TEST_EXTRAS); do $(MAKE) --no-print-directory test-extra EXTRA=$$extra || exit 1; done

check: $(VENV)/.installed-dev
	$(BIN)/python -m tests.services check

suite: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# A separate extra's venv: the platform, the test tools and that extra's library, nothing else.
.venv-%/.installed: requirements.txt requirements/test.txt requirements/%.txt
	$(PYTHON) -m venv .venv-$*
	.venv-$*/bin/pip install -q --upgrade pip
	.venv-$*/bin/pip install -q -r requirements.txt -r requirements/test.txt -r requirements/$*.txt
	touch $@

test-extra: check
	@test -n "$(EXTRA)" || { echo "usage: make test-extra EXTRA=<name>, one of: $(SEPARATE_EXTRAS)" >&2; exit 2; }
	@test -d tests/extras/$(EXTRA) || { echo "no tests/extras/$(EXTRA)/: one of $(SEPARATE_EXTRAS)" >&2; exit 2; }
	$(MAKE) --no-print-directory .venv-$(EXTRA)/.installed
	AK_TEST_EXTRA=$(EXTRA) .venv-$(EXTRA)/bin/python -m pytest tests/extras/$(EXTRA) $(PYTEST_ARGS)

test-extras: check
	@for extra in $(SEPARATE_EXTRAS); do $(MAKE) --no-print-directory test-extra EXTRA=$$extra || exit 1; done

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/history.py
	$(BIN)/python bench/store.py
	$(BIN)/python bench/queue.py
	$(BIN)/python bench/concurrency.py
	$(BIN)/python bench/cheap_path.py
	$(BIN)/python bench/request_cpu.py

# The console's charts: Chart.js from npm, kept in console/static (committed: the console works with no
# internet and make run needs no npm). `make vendor` fetches the pinned version again with npm.
CHARTJS_VERSION := 4.5.1
CHARTJS := console/static/console/vendor
vendor:
	rm -rf var/chartjs && mkdir -p var/chartjs $(CHARTJS)
	cd var/chartjs && npm pack --silent chart.js@$(CHARTJS_VERSION) >/dev/null
	tar -xzf var/chartjs/chart.js-$(CHARTJS_VERSION).tgz -C var/chartjs package/dist/chart.umd.min.js package/LICENSE.md
	sed '/^\/\/# sourceMappingURL=/d' var/chartjs/package/dist/chart.umd.min.js > $(CHARTJS)/chart.umd.min.js
	cp var/chartjs/package/LICENSE.md $(CHARTJS)/chart.js-LICENSE.md
	rm -rf var/chartjs

clean:
	rm -rf $(VENV) .venv-* var db.sqlite3 db.sqlite3-*
