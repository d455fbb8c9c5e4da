# DMoE Explorer. `make run` starts the app, `make test` runs every test; both set up first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PORT    ?= 8501
STAMP   := $(VENV)/.installed

.PHONY: setup browser run lint test test-fast bench clean

setup: $(STAMP)

# constraints.txt pins every package (and what they pull in) to the versions the tests ran on.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt -c constraints.txt
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python -m moecore warmup
	touch $(STAMP)

# Debian's chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Debian chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

run: setup
	$(BIN)/streamlit run app.py --server.port $(PORT) --server.headless true --browser.gatherUsageStats false

# The rule set and its reasons are in pyproject.toml ([tool.ruff]).
lint: setup
	$(BIN)/ruff check .

# The tests run on every core, at most 8 (pytest-xdist; TEST_JOBS=0 runs them in this one process: each
# worker starts its own servers and browsers, so more would cost memory for little). On 2 cores: 452-462 s
# against 649 s in one process. "worksteal" hands an idle worker tests from the other's queue: whole files
# dealt out up front (--dist loadfile) left one core idle for the last minutes, 498 s.
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 8 ] && n=8; echo $$n)
PYTEST = $(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist worksteal

test: setup browser lint
	$(PYTEST) tests

test-fast: setup
	$(PYTEST) tests -m "not slow and not browser"

bench: setup
	$(BIN)/python benchmarks/bench_em.py
	$(BIN)/python benchmarks/bench_app.py
	$(BIN)/python benchmarks/headline.py
	$(BIN)/python benchmarks/bench_classroom.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
