# The two commands: `make lab` opens the labs, `make test` runs every test.
# Both build $(VENV) from nothing on a fresh machine (Python >= 3.11 and pip are all they need).
# Version matrix: `make test PYTHON=python3.12 VENV=.venv312` (one venv per interpreter).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8888
# 127.0.0.1 by default; `make lab IP=0.0.0.0` listens on every interface (a container's published port).
IP     ?= 127.0.0.1
# Jupyter refuses to run as root unless told; containers and lab VMs often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test unit nbval wheel-test bench venv labs-build clean fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab,test]'
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 --display-name "Python 3 (vmlab)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

lab: $(STAMP)
	@echo "Starting JupyterLab on labs/ (no browser is opened; open the URL printed below)."
	$(BIN)/jupyter lab --no-browser --ip=$(IP) --port=$(PORT) --notebook-dir=labs $(ROOT_FLAG)

# tests/ includes tests/test_packaging.py, which builds the wheel and runs Lab 1 from it in a fresh venv.
# nbval runs even when tests/ fails (both results are shown); the target fails if either did.
test: $(STAMP)
	@status=0; \
	$(BIN)/python -m pytest tests || status=$$?; \
	$(BIN)/python -m pytest --nbval labs --nbval-current-env -p no:cacheprovider || status=$$?; \
	exit $$status

unit: $(STAMP)
	$(BIN)/python -m pytest tests

nbval: $(STAMP)
	$(BIN)/python -m pytest --nbval labs --nbval-current-env -p no:cacheprovider

# Only the installed-wheel test (builds the wheel, fresh venv outside the repo, Lab 1 under nbval).
wheel-test: $(STAMP)
	$(BIN)/python -m pytest tests/test_packaging.py -k wheel

# The adversarial domU's long budget (tests/properties/test_adversary.py): FUZZ_EXAMPLES sequences
# of up to FUZZ_STEPS hypercalls each (about 15 minutes); it prints the sequences and calls it ran.
FUZZ_EXAMPLES ?= 2000
FUZZ_STEPS    ?= 50
fuzz: $(STAMP)
	VMLAB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) VMLAB_FUZZ_STEPS=$(FUZZ_STEPS) $(BIN)/python -m pytest tests/properties/test_adversary.py -q -s -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

labs-build: $(STAMP)
	$(BIN)/python tools/build_labs.py

clean:
	rm -rf $(VENV) build *.egg-info
