# cio_sync: `make demo` then `make test` on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CKSUM := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(CKSUM)
DEMO_STAMP := $(VENV)/.installed-duckdb-$(CKSUM)
IT := integration_tests
DBT := cd $(IT) && DBT_PROFILES_DIR=. ../$(BIN)/dbt

.PHONY: install demo test lint clean release

install: $(STAMP)

## everything the tests use (the three warehouses' adapters among it), which holds what the demo uses
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@ $(DEMO_STAMP)

## what the demo uses: cio-sync with DuckDB's adapter alone (pip install 'cio-sync[duckdb]')
$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[duckdb]'
	touch $@

$(IT)/dbt_packages/cio_sync: $(IT)/packages.yml | $(DEMO_STAMP)
	$(DBT) deps --quiet

## demo: build the example shop on DuckDB and show what cio-export would send (dry run).
## The example's events are months old: the demo widens the backfill guard so they show.
DEMO_VARS := '{cio_initial_window: 3650d, cio_max_event_age: 3650d}'
demo: $(DEMO_STAMP) $(IT)/dbt_packages/cio_sync
	$(DBT) build --target duckdb --quiet --vars $(DEMO_VARS)
	cd $(IT) && DBT_PROFILES_DIR=. ../$(BIN)/cio-export --select tag:cio --target duckdb --dry-run \
		--outbox target/outbox --no-progress --state-schema cio_demo_state
	@echo "Request bodies that would be sent: $(IT)/target/outbox/*.ndjson"
	@echo "Rows kept out of Customer.io (cio_quarantine):"
	$(DBT) run-operation print_sync_summary --quiet --target-path target/summary

## test: lint, and the whole suite (DuckDB, PostgreSQL through PG*, Redshift compiled offline) in
## TEST_WORKERS processes (pytest-xdist): many tests wait on servers that are slow or failing on purpose.
## Lint runs beside the suite (its output in target/lint.log, shown at the end); either failing fails.
TEST_WORKERS ?= 2
test: install $(IT)/dbt_packages/cio_sync
	@mkdir -p target
	@$(MAKE) --no-print-directory lint > target/lint.log 2>&1 & lint=$$!; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup; tests=$$?; \
	wait $$lint; linted=$$?; echo "--- make lint (target/lint.log):"; cat target/lint.log; \
	if [ $$linted -ne 0 ]; then echo "make lint failed"; fi; \
	[ $$tests -eq 0 ] && [ $$linted -eq 0 ]

## lint: ruff (with complexity limits) and mypy for Python; sqlfluff (.sqlfluff, dbt templater) for the package's models, compiled
## as a project of their own over the example's seeds in a scratch DuckDB database
LINT_DB := $(CURDIR)/target/lint.duckdb
lint: install $(IT)/dbt_packages/cio_sync
	$(BIN)/ruff check exporter bench
	$(BIN)/mypy
	mkdir -p target && rm -f $(LINT_DB)
	cd $(IT) && CIO_DUCKDB_PATH=$(LINT_DB) DBT_PROFILES_DIR=. ../$(BIN)/dbt seed --target duckdb --quiet \
		--target-path ../target/lint --log-path ../target/lint
	@# A model sqlfluff cannot parse (an internal error) is only a warning to it: a failure here.
	CIO_DUCKDB_PATH=$(LINT_DB) $(BIN)/sqlfluff lint models > target/sqlfluff.log 2>&1; status=$$?; \
		cat target/sqlfluff.log; \
		if grep -q "Unable to lint" target/sqlfluff.log; then echo "sqlfluff could not lint a model (above)"; exit 1; fi; \
		exit $$status

clean:
	rm -rf $(IT)/target $(IT)/dbt_packages $(IT)/logs target logs dist

## release: the sdist and wheel of the exporter in dist/, checked with twine (docs/releasing.md);
## uploads nothing
release: install
	$(BIN)/python -m pip install --quiet -e '.[release]'
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m twine check --strict dist/*

## bench: the benchmark, not part of test (~40–60 min at full size, by machine; BENCH_ROWS=100000
## BENCH_CUSTOMERS=50000 for a quick run); needs the PostgreSQL of PG*; writes docs/benchmarks.md at
## full size: the exporter (bench/run.py), then the dbt package on a generated shop (bench/package.py)
BENCH_ROWS ?= 1000000
BENCH_CUSTOMERS ?= 1000000
.PHONY: bench
bench: install $(IT)/dbt_packages/cio_sync
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py --rows $(BENCH_ROWS)
	$(BIN)/python bench/package.py --customers $(BENCH_CUSTOMERS)
