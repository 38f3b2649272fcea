# Two entry points for a newcomer:  `make lab`  and  `make test`.
# Both create .venv in the repo and install the package (editable) on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8888
# Jupyter refuses to run as root unless told; harmless otherwise.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $(STAMP)

# No other port if PORT is taken, so that the URLs printed are the server's: make lab PORT=8890.
lab: $(STAMP)
	@echo "Starting JupyterLab with mlx_workbench on http://$(HOST):$(PORT)/"
	@echo "OpenAI clients: base_url=http://$(HOST):$(PORT)/mlx/v1, api_key=<the token in the URL below>"
	$(BIN)/jupyter lab --no-browser --ip=$(HOST) --port=$(PORT) --ServerApp.port_retries=0 $(ROOT_FLAG)

test: $(STAMP)
	@command -v chromium >/dev/null || scripts/install_chromium.sh
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg tests notebooks
