# Two entry points for a new machine: `make demo` (the main job) and `make test` (the suite).
# Each creates .venv when missing and installs the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# The main job: fc vs Spinal head on real Fashion-MNIST. Uses Debian's copy of the data (installed
# here when we are root with apt-get), otherwise downloads it.
demo: $(STAMP)
	@if [ ! -f $(FASHION) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 || true; fi
	$(BIN)/spinalnet compare --config configs/demo.yaml $$([ -f $(FASHION) ] || echo --download)

# pytest exits 5 when it collects no test: that is not a failure of the suite.
test: $(STAMP)
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
