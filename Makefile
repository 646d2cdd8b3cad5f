# Synapse desktop: `make demo` and `make test` are the whole set-up on a fresh Linux machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The one torch requirement. Plain `torch` for users (pip picks the build for their machine,
# CUDA on a GPU box); CI pins the CPU build that lies on its disk: make test TORCH=torch==2.13.0
TORCH ?= torch

# What GUI tests need from the system: a virtual X server, Mesa's software OpenGL and Qt's xcb libraries.
SYSTEM_PACKAGES := xvfb xauth libgl1-mesa-dri libegl1 libgl1 libglx-mesa0 libxkbcommon-x11-0 \
	libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
	libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libdbus-1-3 libfontconfig1
XVFB := xvfb-run -a -s "-screen 0 1600x1200x24"
# Mesa's software rasteriser, so that tests and screenshots render the same everywhere.
GL_ENV := LIBGL_ALWAYS_SOFTWARE=1 QT_QPA_PLATFORM=xcb

NATIVE_SOURCES := $(wildcard native/src/*.c native/src/*.h native/include/*.h native/_cffi_*.py)
C_FILES := $(wildcard native/src/*.c native/src/*.h native/include/*.h native/ctests/*.c native/ctests/*.h)
STAMP := $(VENV)/.installed

.PHONY: help install system-deps test lint check sanitize bench demo clean

help:
	@echo "make demo      set up, then run the demo"
	@echo "make test      set up, then run every test (under a virtual display)"
	@echo "make lint      ruff, clang-format (check mode), import-layering contracts"
	@echo "make check     mypy (strict for synapse_native)"
	@echo "make sanitize  C tests under ASan+UBSan and under TSan"
	@echo "make bench     the benchmarks under bench/ (figures in docs/PERFORMANCE.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

# Installs torch first so that the project's own `torch` requirement (in the probe extra) is met
# by the build chosen above; the C core is compiled by cffi during the install.
$(STAMP): $(BIN)/python pyproject.toml setup.py $(NATIVE_SOURCES)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(STAMP)

system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing system packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "GUI tests need these system packages; install them, then run make test again:"; \
		echo "  sudo apt-get install $$missing"; \
		exit 1; \
	fi

test: install system-deps
	$(GL_ENV) $(XVFB) $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/clang-format --dry-run -Werror $(C_FILES)
	$(BIN)/lint-imports

check: install
	$(BIN)/mypy native probe synapse_desktop

sanitize:
	$(MAKE) -C native/ctests sanitize

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Real training: a small Llama-style model learns Python source with the probe attached, and the
# app shows it live (docs/DEMO.md). Closing the window stops the trainer.
DEMO_PORT ?= 9000
demo: install
	$(BIN)/synapse demo --port $(DEMO_PORT)

clean:
	rm -rf build dist *.egg-info native/synapse_native/*.so native/ctests/bin
