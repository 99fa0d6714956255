# Set-up and everyday commands. `make test` and `make search` set up first when needed.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data test search demo lint format bench clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install -q -e ".[dev,postgres]"
	touch $(STAMP)

# Debian's Fashion-MNIST is the embedded default dataset; install it where apt exists.
data:
	@if [ ! -f $(FMNIST) ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && apt-get install -y -q dataset-fashion-mnist; \
	  else \
	    echo "Fashion-MNIST missing and no apt-get: install Debian's dataset-fashion-mnist or pass --data-dir"; \
	  fi; \
	fi

test: setup
	$(BIN)/pytest -q

search: setup
	$(BIN)/nlfs search --strategy regevo

# The whole pipeline (search, elimination, transfer, fidelity, report) on the embedded default
# configs/pipeline_cpu.toml: about 5 minutes on 2 cores; rerun to resume.
demo: setup
	$(BIN)/nlfs run

LINTED := nlfs strategies tests benchmarks

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

format: setup
	$(BIN)/ruff format $(LINTED)

bench: setup
	$(BIN)/python benchmarks/screening.py

clean:
	rm -rf $(VENV) build *.egg-info
