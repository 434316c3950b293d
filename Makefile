# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.curate-installed
DEMO   ?= work/demo
export CURATE_CACHE_DIR ?= $(CURDIR)/work/cache

.PHONY: install data demo test lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian data packages for the built-in benchmarks; installed when missing and possible (root or sudo).
data:
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -f /usr/share/games/fortunes/computers ]; then \
	  echo "data: fashion-mnist and fortunes present"; \
	elif command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] && SUDO= || { sudo -n true 2>/dev/null && SUDO=sudo; }; }; then \
	  $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q dataset-fashion-mnist fortunes >/dev/null && echo "data: installed"; \
	else \
	  echo "data: cannot install dataset-fashion-mnist/fortunes here; their benchmarks and tests will be skipped"; \
	fi

CURATE := $(VENV)/bin/curate
WS     := $(DEMO)/ws-digits

demo: install data
	$(CURATE) datasets make fmnist-textures --out $(DEMO)/fmnist-textures --overwrite
	$(CURATE) datasets make digits-color --out $(DEMO)/digits-color --overwrite
	$(CURATE) embed $(DEMO)/digits-color/metadata.csv --encoder efficientnet-lite0 --out $(WS)
	$(CURATE) dynamics $(WS)
	$(CURATE) detect $(WS)
	$(CURATE) prune $(WS) --out $(DEMO)/manifests/prune.parquet
	$(CURATE) mix $(WS) --out $(DEMO)/manifests/mix.parquet
	$(CURATE) balance $(WS) --out $(DEMO)/manifests/balance.parquet
	$(CURATE) select keep-all $(WS) --out $(DEMO)/manifests/erm.parquet
	$(CURATE) finetune $(WS) --manifest $(DEMO)/manifests/erm.parquet --out $(DEMO)/runs/erm
	$(CURATE) finetune $(WS) --manifest $(DEMO)/manifests/balance.parquet --out $(DEMO)/runs/balance
	$(CURATE) evaluate $(DEMO)/runs/balance
	$(CURATE) report $(DEMO)/runs/erm $(DEMO)/runs/balance --workspace $(WS) --out $(DEMO)/report

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install data lint
	$(PY) -m pytest -q

clean:
	rm -rf work .pytest_cache .ruff_cache .mypy_cache
