# tokviz: `make install` sets up everything and runs the main job; `make test` runs every test.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Graphviz draws the graphs; the Noto fonts let Korean, CJK and emoji render in PNGs;
# a C/C++ toolchain with cmake builds llama-cpp-python (the embedded model's runtime) once.
# librsvg2-bin (rsvg-convert) draws the comparison chart as PNG.
# chromium is for the HTML view's browser tests only.
APT_PACKAGES := graphviz librsvg2-bin fonts-noto-cjk fonts-noto-color-emoji build-essential cmake chromium
DEMO_PROMPT := The capital of France is

.PHONY: install system-deps venv demo test lint bench clean

install: system-deps venv demo

system-deps:
	@if command -v apt-get >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	elif command -v brew >/dev/null 2>&1; then \
	  brew install graphviz librsvg cmake; brew install --cask chromium || true; \
	else \
	  echo "install Graphviz, cmake and a C/C++ compiler with your package manager, then run make again" >&2; \
	fi

venv: $(BIN)/tokviz

$(BIN)/tokviz: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc 2>/dev/null || echo 2) $(BIN)/pip install -e '.[dev]'
	touch $@

demo: venv
	mkdir -p demo-output
	$(BIN)/tokviz predict "$(DEMO_PROMPT)" -o demo-output/capital.svg -o demo-output/capital.png -o demo-output/capital.html --save demo-output/capital.json
	@echo "written: demo-output/capital.svg, capital.png, capital.html (open it in a browser) and capital.json"

lint: venv
	$(BIN)/ruff check tokviz tests bench

test: venv lint
	$(BIN)/pytest

bench: venv
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache
