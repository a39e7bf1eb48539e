# The README's two commands: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(CURDIR)/data
LISTEN ?= 0.0.0.0:6443
# OS packages the real runtime and the tests need (installed when run as root).
OS_PACKAGES := runc crun containernetworking-plugins iproute2 iptables nftables etcd-server busybox-static docker-registry
# Debian's kubectl 1.20 (package kubernetes-client) would clash with the installed kubectl:
# it is unpacked under .tools/ instead, for the tests of an older client.
OLD_KUBECTL := .tools/kubectl-1.20/usr/bin/kubectl
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

$(OLD_KUBECTL):
ifeq ($(SUDO_APT),yes)
	@mkdir -p .tools/debs .tools/kubectl-1.20
	@cd .tools/debs && (apt-get download kubernetes-client >/dev/null 2>&1 || \
	  (apt-get update -qq && apt-get download kubernetes-client >/dev/null))
	dpkg-deb -x .tools/debs/kubernetes-client_*.deb .tools/kubectl-1.20
else
	@echo "not root: skipping Debian's kubectl 1.20"
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

test: os-packages $(OLD_KUBECTL) $(VENV)/.installed-test lint typecheck imports
	$(BIN)/pytest -q -p no:cacheprovider tests

bench: install $(VENV)/.installed-test
	$(BIN)/python -m bench.api

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
