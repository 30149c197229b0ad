# flops_fit: one command each to set up, run the light study, and test.
# Every target builds .venv from pinned versions (constraints.txt) first; the
# stamp file makes a second run reinstall nothing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS ?= dev,distributed
STUDY_OUT ?= outputs/light_study

.PHONY: install chromium test study lint bench lab lock clean

install: $(STAMP) chromium

# The browser test (tests/test_explorer_browser.py) drives Debian's Chromium; Playwright
# never downloads a browser of its own. As root, apt-get installs it; otherwise this
# says what to install (or FLOPS_FIT_CHROMIUM names another Chromium/Chrome binary).
chromium:
	@if [ -n "$$FLOPS_FIT_CHROMIUM" ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's chromium for the browser test (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium fonts-liberation >/dev/null; \
	else \
	  echo "The browser test needs Chromium: sudo apt-get install --no-install-recommends chromium fonts-liberation" >&2; \
	  echo "(Debian/Ubuntu), or set FLOPS_FIT_CHROMIUM=/path/to/chromium; until then it fails, and" >&2; \
	  echo "'$(PY) -m pytest -m \"not browser\"' runs everything else." >&2; \
	fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	$(PY) -m ipykernel install --sys-prefix --name flops_fit --display-name "Python (flops_fit)" >/dev/null
	touch $(STAMP)

test: install
	$(PY) -m pytest

study: install
	@test -f notebooks/fno_study.ipynb || { echo "notebooks/fno_study.ipynb is missing: nothing to run" >&2; exit 1; }
	mkdir -p $(STUDY_OUT)
	$(VENV)/bin/papermill notebooks/fno_study.ipynb $(STUDY_OUT)/fno_study.ipynb -p light true -p output_dir $(abspath $(STUDY_OUT))
	@echo "Outputs: $(STUDY_OUT)/study_results.csv, $(STUDY_OUT)/pareto_plot.png, $(STUDY_OUT)/fno_study.ipynb"

lint: install
	$(VENV)/bin/ruff check flops_fit tests benchmarks

bench: install
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS),bench]"
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# JupyterLab refuses to start as root without --allow-root (containers run as root).
lab: install
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS),notebooks]"
	$(VENV)/bin/jupyter lab notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Regenerate the pins from a fresh resolve of pyproject's ranges (torch kept at the on-disk CPU build).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet "torch==2.13.0" -e ".[dev,distributed,notebooks,bench,examples]"
	{ echo "# Pinned versions that \`make\` and CI install (pip -c constraints.txt)."; \
	  echo "# Ranges live in pyproject.toml; regenerate with \`make lock\`."; \
	  echo "# torch 2.13.0 is the CPU build on this machine's disk; an unpinned torch pulls a multi-GB CUDA build."; \
	  .lockenv/bin/pip freeze --exclude-editable | sed 's/+cpu//'; } > constraints.txt
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .pytest_cache outputs
