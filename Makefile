# gptlib course book. The two commands a new user needs: `make book` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
NB      ?= chapters/*.ipynb
STUDENT ?= student
# Stored outputs are the CPU profile's; tests never touch the network.
OFFLINE := GPTLIB_PROFILE=cpu HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONHASHSEED=0
NBVAL   := --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg --nbval-cell-timeout=1200

.PHONY: book test lab export execute student clean env

env: $(STAMP)
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

book: $(STAMP)  ## build the HTML book into _build/html (warnings are errors)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

test: $(STAMP)  ## the whole test suite, every notebook re-executed and compared by nbval
	$(OFFLINE) $(PY) -m pytest tests chapters $(NBVAL) -q -rs --durations=15

lab: $(STAMP)  ## JupyterLab on the chapters
	$(VENV)/bin/jupyter lab chapters/

export: $(STAMP)  ## write the notebooks' exported cells into gptlib/
	$(PY) tools/export.py

execute: $(STAMP)  ## re-run notebooks top to bottom in place (NB=chapters/02_attention.ipynb for one)
	for nb in $(NB); do \
	  echo "== $$nb"; \
	  $(OFFLINE) $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.record_timing=False "$$nb" || exit 1; \
	done
	$(PY) tools/export.py

student: $(STAMP)  ## write the student edition into $(STUDENT)/ (never overwrites your work)
	$(PY) tools/student.py --out $(STUDENT)

clean:
	rm -rf _build $(STUDENT) .pytest_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
