# The two commands: `make lab` opens the labs, `make test` runs every test.
# Both build .venv from nothing on a fresh machine (Python >= 3.11 and pip are all they need).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8888
# Jupyter refuses to run as root unless told; containers and lab VMs often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test unit nbval bench venv labs-build clean fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab,test]'
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 --display-name "Python 3 (vmlab)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

lab: $(STAMP)
	@echo "Starting JupyterLab on labs/ (no browser is opened; open the URL printed below)."
	$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) --notebook-dir=labs $(ROOT_FLAG)

test: $(STAMP)
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest --nbval labs --nbval-current-env -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/python -m pytest tests

nbval: $(STAMP)
	$(BIN)/python -m pytest --nbval labs --nbval-current-env -p no:cacheprovider

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
