# Synapse desktop: `make demo` and `make test` are the whole set-up on a fresh Linux machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The one torch requirement. Plain `torch` for users (pip picks the build for their machine,
# CUDA on a GPU box); CI pins the CPU build that lies on its disk: make test TORCH=torch==2.13.0
TORCH ?= torch

# What GUI tests need from the system: a virtual X server, Mesa's software OpenGL and Qt's xcb libraries;
# and the desktop's MIME and menu-entry tools that `synapse install-desktop` runs (and its tests check).
SYSTEM_PACKAGES := xvfb xauth libgl1-mesa-dri libegl1 libgl1 libglx-mesa0 libxkbcommon-x11-0 \
	libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
	libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libdbus-1-3 libfontconfig1 \
	shared-mime-info desktop-file-utils libglib2.0-bin
XVFB := xvfb-run -a -s "-screen 0 1600x1200x24"
# Mesa's software rasteriser, so that tests and screenshots render the same everywhere.
GL_ENV := LIBGL_ALWAYS_SOFTWARE=1 QT_QPA_PLATFORM=xcb

NATIVE_SOURCES := $(wildcard native/src/*.c native/src/*.h native/include/*.h native/_cffi_*.py)
C_FILES := $(wildcard native/src/*.c native/src/*.h native/include/*.h native/ctests/*.c native/ctests/*.h)
STAMP := $(VENV)/.installed

.PHONY: help install system-deps test lint check sanitize bench demo clean wheel package package-test \
	fuzz fuzz-deps fuzz-smoke

help:
	@echo "make demo      set up, then run the demo"
	@echo "make test      set up, then run every test (under a virtual display)"
	@echo "make lint      ruff, clang-format (check mode), import-layering contracts"
	@echo "make check     mypy (strict for synapse_native)"
	@echo "make sanitize  C tests under ASan+UBSan and under TSan"
	@echo "make bench     the benchmarks under bench/ (figures in docs/PERFORMANCE.md)"
	@echo "make wheel     the sdist and the wheel (with the compiled C core) in dist/"
	@echo "make package   the bundled app: dist/synapse-desktop/ and its .tar.gz (docs/INSTALL.md)"
	@echo "make package-test  both, then their tests: fresh venvs without a compiler, the bundle live"
	@echo "make fuzz      every fuzz target for FUZZ_SECONDS (300) each (fuzz/README.md)"
	@echo "make fuzz-smoke  every fuzz target for 60 s (CI), then the 3-minute soak"

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
	$(BIN)/mypy native serve probe synapse_desktop

sanitize:
	$(MAKE) -C native/ctests sanitize

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Real training: a small Llama-style model learns Python source with the probe attached, and the
# app shows it live (docs/DEMO.md). Closing the window stops the trainer.
DEMO_PORT ?= 9000
demo: install
	$(BIN)/synapse demo --port $(DEMO_PORT)

# Packaging (docs/INSTALL.md). The wheel is built with this venv's build tools (no download);
# the bundle is PyInstaller's one-folder app from packaging/synapse-desktop.spec.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
BUNDLE_TAR := dist/synapse-desktop-$(VERSION)-linux-$(shell uname -m).tar.gz

wheel: install
	rm -f dist/synapse_desktop-*
	$(BIN)/python -m build --no-isolation --outdir dist .

package: install
	$(BIN)/pyinstaller --noconfirm --clean --log-level WARN \
		--distpath dist --workpath build/pyinstaller packaging/synapse-desktop.spec
	tar -C dist -czf $(BUNDLE_TAR) synapse-desktop
	@du -sh dist/synapse-desktop $(BUNDLE_TAR)

# The wheel installed in fresh venvs with no compiler on PATH (the probe side with torch and no
# Qt; the viewer with Qt and no torch), and the bundle run with no venv against its own `sim`.
package-test: wheel package system-deps
	$(GL_ENV) $(XVFB) env TORCH="$(TORCH)" $(BIN)/python -m pytest -p no:cacheprovider packaging/tests

# Fuzzing (fuzz/README.md): the Python parsers under atheris, the C ones under libFuzzer with
# ASan + UBSan, which needs clang and its runtime libraries.
FUZZ_PACKAGES := clang libclang-rt-14-dev
FUZZ_SECONDS ?= 300

fuzz-deps:
	@$(MAKE) --no-print-directory system-deps SYSTEM_PACKAGES="$(FUZZ_PACKAGES)"

fuzz: install fuzz-deps
	$(MAKE) -f fuzz/Makefile fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

# CI: 60 s a target (7 targets: 7 minutes), then the soak's 3-minute version (bench/soak.py).
fuzz-smoke: install fuzz-deps system-deps
	$(MAKE) -f fuzz/Makefile fuzz FUZZ_SECONDS=60
	$(BIN)/python bench/soak.py --minutes 3 --interval 10 --warmup 60 --frame-log-mb 32

clean:
	rm -rf build dist *.egg-info native/synapse_native/*.so native/ctests/bin
