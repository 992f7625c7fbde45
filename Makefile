# cio_sync: `make demo` then `make test` on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
IT := integration_tests
DBT := cd $(IT) && DBT_PROFILES_DIR=. ../$(BIN)/dbt

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

$(IT)/dbt_packages/cio_sync: $(STAMP) $(IT)/packages.yml
	$(DBT) deps --quiet

## demo: build the example shop on DuckDB and show what cio-export would send (dry run)
demo: install $(IT)/dbt_packages/cio_sync
	$(DBT) build --target duckdb --quiet
	$(DBT) run-operation print_sync_summary --quiet
	cd $(IT) && DBT_PROFILES_DIR=. ../$(BIN)/cio-export --select tag:cio --target duckdb --dry-run \
		--outbox target/outbox --no-progress
	@echo "Request bodies that would be sent: $(IT)/target/outbox/*.ndjson"

## test: the whole suite (DuckDB, PostgreSQL through PG*, Redshift compiled offline)
test: install $(IT)/dbt_packages/cio_sync
	$(BIN)/ruff check exporter
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check exporter

clean:
	rm -rf $(IT)/target $(IT)/dbt_packages $(IT)/logs target logs

## bench: the benchmark, not part of test (~30 min at full size; BENCH_ROWS=100000 for a quick run);
## needs the PostgreSQL of PG*; writes docs/benchmarks.md at full size (see bench/run.py)
BENCH_ROWS ?= 1000000
.PHONY: bench
bench: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py --rows $(BENCH_ROWS)
