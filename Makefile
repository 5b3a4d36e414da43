# Two commands set everything up (see README.md):
#   make book   - create .venv if missing, install requirements, execute every chapter, build _build/html
#   make test   - same environment; unit tests, nbval over every notebook, clean-notebook check, strict site build
#   make lab    - open JupyterLab on the notebooks
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JB_BUILD := $(BIN)/jupyter-book build . -W -n --keep-going

.PHONY: install book test unit nbval site lab clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

book: install
	$(JB_BUILD)
	@echo "The book is at _build/html/index.html"

test: unit nbval site

unit: install
	$(BIN)/python -m pytest tests

nbval: install
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

site: install
	$(JB_BUILD)

lab: install
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf _build
