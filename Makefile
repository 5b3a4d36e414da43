# Two commands set everything up (see README.md):
#   make book   - create .venv if missing, install requirements, execute every chapter, build _build/html
#   make test   - same environment; unit tests, every chapter executed once under nbval (outputs kept
#                 in the Jupyter cache), strict site build from those executions, browser and
#                 same-numbers checks of the built book
#   make lab    - open JupyterLab on the notebooks
#   make times  - each chapter's execution time in the last nbval run (budget 120 s)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JB_BUILD := $(BIN)/jupyter-book build . --all -W -n --keep-going

.PHONY: install book test unit nbval site checks times lab clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

book: install
	$(JB_BUILD)
	@echo "The book is at _build/html/index.html"

test: unit nbval site checks

unit: install
	$(BIN)/python -m pytest tests

# executes every chapter once; notebooks/conftest.py stores the executions for `site`
nbval: install
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

site: install
	$(JB_BUILD)

# the built site in headless Chromium (offline), and one model chapter re-run for identical numbers
checks: install
	$(BIN)/python -m pytest -p no:cacheprovider tests_book

times:
	@$(BIN)/python tools/chapter_times.py

lab: install
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf _build
