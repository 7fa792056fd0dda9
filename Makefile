# Everything runs inside .venv, created with the machine's python3.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/keyfarm generate demo-world --keys 5000 --seed 7
	$(VENV)/bin/keyfarm link demo-world --out demo-out
	$(VENV)/bin/keyfarm evaluate demo-out --truth demo-world/truth.parquet

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) demo-world demo-out
