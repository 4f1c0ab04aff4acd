# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each bootstraps its virtualenv idempotently (re-installs only when pyproject.toml changes).
#
#   make test                          ruff, mypy and pytest on the newest supported Airflow
#   make test AIRFLOW_VERSION=3.0.6    the same suite on the oldest supported Airflow 3.x
#   make demo                          emulator + an end-to-end batch run, results printed
#   make bench                         benchmarks (not part of make test)

PYTHON ?= python3.11
AIRFLOW_VERSION ?= 3.3.2
NEWEST_AIRFLOW := 3.3.2
ifeq ($(AIRFLOW_VERSION),$(NEWEST_AIRFLOW))
VENV ?= .venv
COMPAT_PINS :=
EXTRAS := test,common-ai
else
VENV ?= .venv-airflow-$(AIRFLOW_VERSION)
# What Airflow 3.0's constraints file pinned (it is not reachable here): 3.0's ObjectStoragePath
# breaks with universal-pathlib 0.3, its execution API (dag.test, workers) with FastAPI > 0.116,
# and its api-server's tokens with recent PyJWT (which refuses an issuer of None). The celery
# provider's newer releases send the 3.0 scheduler workloads it cannot queue ("_process_workloads
# cannot handle <class 'tuple'>"); 3.12.2 runs tests/deployment/test_celery_scale_out.py, but not
# with Celery 5.7, which dropped the celery.backends.database.retry it imports (the scheduler then
# cannot load CeleryExecutor).
COMPAT_PINS := "universal-pathlib<0.3" "fastapi<0.117" "starlette<0.48" "pydantic<2.12" "cadwyn<5.5" "pyjwt<2.11" \
	"apache-airflow-providers-celery==3.12.2" "celery<5.7"
# Not [common-ai]: common-ai 1.0 needs pydantic-ai-slim, which needs pydantic>=2.12, and with it
# Airflow 3.0.6's execution API answers a task's Variable.set with a 500 (the three secret tests of
# tests/operators/test_webhook_operators.py fail); its tests skip here (tests/test_common_ai.py).
EXTRAS := test
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)

.PHONY: venv system-deps test lint typecheck pytest demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[$(EXTRAS)]" "apache-airflow==$(AIRFLOW_VERSION)" $(COMPAT_PINS)
	@rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Debian packages some tests start (scripts/system-packages.txt); installs only what is missing.
system-deps:
	bash scripts/system-deps.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

demo: venv
	$(BIN)/python scripts/demo.py

bench: venv
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf .venv .venv-airflow-* .mypy_cache .pytest_cache .ruff_cache
