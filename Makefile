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

test: setup browser lint
	$(BIN)/python -m pytest -q tests

test-fast: setup
	$(BIN)/python -m pytest -q tests -m "not slow and not browser"

bench: setup
	$(BIN)/python benchmarks/bench_em.py
	$(BIN)/python benchmarks/bench_app.py
	$(BIN)/python benchmarks/headline.py
	$(BIN)/python benchmarks/bench_classroom.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
