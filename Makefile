# The README's two commands: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(CURDIR)/data
LISTEN ?= 0.0.0.0:6443
# OS packages the real runtime and the tests need (installed when run as root).
OS_PACKAGES := runc crun containernetworking-plugins iproute2 nftables etcd-server kubernetes-client
SUDO_APT := $(shell [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && echo yes)

.PHONY: install os-packages run test lint typecheck imports unit e2e bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

os-packages:
ifeq ($(SUDO_APT),yes)
	@missing=""; for p in $(OS_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing OS packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
else
	@echo "not root: skipping OS packages ($(OS_PACKAGES))"
endif

install: os-packages $(VENV)/.installed

run: install
	$(BIN)/kubeling server --data-dir $(DATA_DIR) --listen $(LISTEN)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check kubeling tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

imports: $(VENV)/.installed-test
	$(BIN)/lint-imports

unit: $(VENV)/.installed-test
	$(BIN)/pytest -q tests/unit tests/storage

test: os-packages $(VENV)/.installed-test lint typecheck imports
	$(BIN)/pytest -q -p no:cacheprovider tests

bench: install $(VENV)/.installed-test
	$(BIN)/python bench/api.py
	$(BIN)/python bench/storage.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
