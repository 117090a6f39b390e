# Two entry points (see README): `make sandbox` and `make test`. Everything else is a step of those.
VENV ?= .venv
BIN := $(VENV)/bin
NODES ?= 3
SANDBOX_INVENTORY = $(shell $(BIN)/python -c "from mcpctl.sandbox.paths import SandboxLayout as L; print(L.default().inventory_dir / 'hosts.yml')")

.PHONY: help system-deps venv sandbox sandbox-down test lint unit integration molecule bench

help:
	@echo "make sandbox      bring up $(NODES) local test hosts and deploy onto them"
	@echo "make test         lint, unit tests, integration tests on real hosts, Molecule"
	@echo "make sandbox-down remove the sandbox"
	@echo "make bench        print benchmark figures"

system-deps:
	@scripts/install-system-deps

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

sandbox: system-deps venv
	$(BIN)/mcpctl sandbox up --nodes $(NODES)
	$(BIN)/ansible-playbook -i $(SANDBOX_INVENTORY) playbooks/deploy.yml

sandbox-down: venv
	$(BIN)/mcpctl sandbox down

test: system-deps venv lint unit integration molecule

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint --profile production roles playbooks molecule

unit: venv
	$(BIN)/pytest tests/unit -q

integration: venv
	$(BIN)/pytest tests/integration -q -m integration

# Molecule's hosts live in a sandbox of their own (the scenarios' fixed addresses are in it).
molecule: export MCP_SANDBOX_NAME = mcp-molecule
molecule: export MCP_SANDBOX_SUBNET = 10.75.0.0/24
molecule: venv
	$(BIN)/mcpctl sandbox prepare
	eval "$$($(BIN)/mcpctl sandbox env)" && export PATH="$(abspath $(BIN)):$$PATH" && \
	  molecule test -s common && molecule test -s cluster; status=$$?; $(BIN)/mcpctl sandbox down; exit $$status

bench: venv
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/inventory.py
