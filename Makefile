# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
VENV   ?= .venv
PY     := $(VENV)/bin/python
# One stamp per install: `make demo` needs only what running needs; `make test` adds the dev extra.
STAMP     := $(VENV)/.curate-installed
DEV_STAMP := $(VENV)/.curate-dev-installed
DEMO   ?= work/demo
export CURATE_CACHE_DIR ?= $(CURDIR)/work/cache

.PHONY: install install-dev data browser demo test lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

# Debian data packages for the built-in benchmarks; installed when missing and possible (root or sudo).
data:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -f /usr/share/games/fortunes/computers ]; then \
	  echo "data: fashion-mnist and fortunes present"; \
	elif command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] && SUDO= || { sudo -n true 2>/dev/null && SUDO=sudo; }; }; then \
	  $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q dataset-fashion-mnist fortunes >/dev/null && echo "data: installed"; \
	else \
	  echo "data: cannot install dataset-fashion-mnist/fortunes here; their benchmarks and tests will be skipped"; \
	fi

# Debian's Chromium for the HTML report's headless-browser test; installed when missing and possible.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
	  echo "browser: chromium present"; \
	elif command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] && SUDO= || { sudo -n true 2>/dev/null && SUDO=sudo; }; }; then \
	  $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null && echo "browser: chromium installed"; \
	else \
	  echo "browser: cannot install chromium here; the HTML report's browser test will be skipped"; \
	fi

CURATE := $(VENV)/bin/curate
# fmnist-textures at demo size (3,000 train images; 4,200 in all) so that embedding them with
# EfficientNet-Lite0 on a 2-core CPU takes ~5 minutes; the quality benchmark uses the full size.
DEMO_DATA := --n-train 3000 --n-val-per-group 100 --n-test-per-group 200

demo: install data
	$(CURATE) datasets make fmnist-textures --out $(DEMO)/fmnist-textures $(DEMO_DATA) --overwrite
	$(CURATE) run $(DEMO)/fmnist-textures/metadata.csv --method erm --method prune --method mix \
	  --method balance --method oracle --out $(DEMO)/runs --workspace $(DEMO)/ws
	$(CURATE) report $(DEMO)/runs/erm $(DEMO)/runs/prune $(DEMO)/runs/mix $(DEMO)/runs/balance \
	  $(DEMO)/runs/oracle --workspace $(DEMO)/ws --out $(DEMO)/report
	@echo "open the report: $(abspath $(DEMO)/report/report.html)"

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install-dev data browser lint
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile

clean:
	rm -rf work .pytest_cache .ruff_cache .mypy_cache
