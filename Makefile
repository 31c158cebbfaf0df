# gptlib course book. The two commands a new user needs: `make book` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
NB      ?= chapters/*.ipynb
STUDENT ?= student
DIR     ?= chapters
LAB_FLAGS ?=
# Stored outputs are the CPU profile's, without progress bars: TQDM_DISABLE=1, and tqdm's one warning in a
# kernel without ipywidgets ("IProgress not found", at `import tqdm.auto`) is filtered by its message
# (ipywidgets is not installed on purpose: tqdm's widget bars ignore TQDM_DISABLE). Offline: the Hugging Face
# libraries are told so, and GPTLIB_OFFLINE=1 with tools/offline on PYTHONPATH installs the network guard
# (tools/offline/sitecustomize.py) in every Python process: pytest, notebook kernels, their subprocesses.
OFFLINE := GPTLIB_PROFILE=cpu HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONHASHSEED=0 \
           TQDM_DISABLE=1 PYTHONWARNINGS="ignore:IProgress not found$${PYTHONWARNINGS:+,$$PYTHONWARNINGS}" \
           GPTLIB_OFFLINE=1 PYTHONPATH="$(CURDIR)/tools/offline$${PYTHONPATH:+:$$PYTHONPATH}"
NBVAL   := --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg --nbval-cell-timeout=1200

GRADE_TIMEOUT ?= 300

.PHONY: book test lab export execute student grade clean env typecheck browser-test

# requirements.lock pins packages that need Python 3.11.5 (numpy 2.4, ipython 9: 3.11; soupsieve 4.1: 3.11.5):
# say so before anything is installed (tests/test_setup_claims.py keeps this, pyproject and README equal).
# The editable install's "Please be careful with folders ... same name as your package" box is setuptools'
# general advice for every editable install (the folder *is* the package here), filtered by its message.
env: $(STAMP)
$(STAMP): requirements.lock requirements-nodeps.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11, 5))' || { \
	  echo "gptlib needs Python >= 3.11.5 (requirements.lock pins numpy 2.4, ipython 9, soupsieve 4.1); $(PYTHON) is" \
	       "$$($(PYTHON) --version 2>&1). Run: make PYTHON=python3.12 (or another >= 3.11.5) $(MAKECMDGOALS)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	@echo "== installing requirements.lock into $(VENV): about 2 GB; on Linux x86-64 PyPI's torch adds" \
	      "its CUDA libraries (several GB more). Minutes the first time, seconds from pip's cache"
	$(PY) -m pip install --progress-bar on -r requirements.lock
	@echo "== installing nbgrader without its optional widgets (requirements-nodeps.lock)"
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.lock
	@echo "== installing gptlib (editable)"
	PYTHONWARNINGS="ignore:Editable installation" \
	  $(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# --all: Sphinx skips copying _static/ when no page changed, so an edited stylesheet would not show.
book: $(STAMP)  ## build the HTML book into _build/html (warnings are errors)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going --all

browser-test: book  ## read the built book in headless Chromium (needs `chromium`; .ci/run installs it)
	$(PY) tools/browser_test.py --html _build/html

test: $(STAMP)  ## the whole test suite, every notebook re-executed and compared by nbval
	$(OFFLINE) $(PY) -m pytest tests chapters $(NBVAL) -q -rs --durations=15

typecheck: $(STAMP)  ## mypy on gptlib (config in pyproject.toml; tests/test_typing.py runs the same)
	$(PY) -m mypy gptlib

lab: $(STAMP)  ## JupyterLab on chapters/ (DIR=student for the student edition; LAB_FLAGS=--allow-root ...)
	@test -d "$(DIR)" || { echo "no folder $(DIR): for the student edition run \`make student\` first" \
	  "(or make student STUDENT=$(DIR))"; exit 1; }
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) "$(DIR)"

export: $(STAMP)  ## write the notebooks' exported cells into gptlib/
	$(PY) tools/export.py

# tools/nbnormalize.py then merges consecutive printed streams (the book shows one box per printed table)
# and writes the installed kernelspec, as JupyterLab does at its first save: opening a chapter changes nothing.
execute: $(STAMP)  ## re-run notebooks top to bottom in place (NB=chapters/02_attention.ipynb for one)
	for nb in $(NB); do \
	  echo "== $$nb"; \
	  $(OFFLINE) $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.record_timing=False "$$nb" || exit 1; \
	  $(PY) tools/nbnormalize.py "$$nb" || exit 1; \
	done
	$(PY) tools/export.py

student: $(STAMP)  ## write the student edition into $(STUDENT)/ (never overwrites your work)
	$(PY) tools/student.py --out "$(STUDENT)"

# SUBMISSIONS=DIR with DIR/<student>/<notebook>.ipynb -> DIR/grades.csv, DIR/feedback/ (grade.py);
# GRADE_TIMEOUT: seconds per cell; GRADEBOOK: nbgrader's course folder (.grading/<name>-<hash>/)
GRADEBOOK_ARG = $(if $(GRADEBOOK),--gradebook "$(GRADEBOOK)")
grade: $(STAMP)  ## grade learners' notebooks with nbgrader, offline: make grade SUBMISSIONS=DIR
	@test -n "$(SUBMISSIONS)" || \
	  { echo "make grade needs SUBMISSIONS=DIR (DIR/<student>/<notebook>.ipynb)"; exit 2; }
	$(OFFLINE) $(PY) tools/grade.py "$(SUBMISSIONS)" --timeout $(GRADE_TIMEOUT) $(GRADEBOOK_ARG)

# clean removes build outputs only: never student/ (learners work there) nor .grading/ (gradebooks)
clean:
	rm -rf _build .pytest_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
