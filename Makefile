# Makefile: the entry points of the project. `make demo` and `make test` are
# the two commands a new machine needs; everything they need is built here.

SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
SQLC  := $(BIN)/sqlc
CLI   := $(BIN)/backfill
GOFILES := $(shell find . -name '*.go' -not -path './dist/*' -not -path './tools/*' 2>/dev/null)

.PHONY: all cli sqlc generate verify new backfill archive demo test bench bench-load interop schema vet clean help

all: cli ## build bin/backfill (the default)

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

cli: $(CLI) ## build the operator CLI bin/backfill

$(CLI): $(GOFILES) go.mod go.sum
	$(GO) build -ldflags "-X github.com/runonce/backfill/cmd/backfill/internal/app.commit=$$(git rev-parse HEAD 2>/dev/null || echo unknown)" -o $(CLI) ./cmd/backfill

# sqlc is pinned in its own module (tools/sqlc/go.mod) so that its large
# dependency graph stays out of the runtime's. Its first build needs gcc and
# a few minutes; later builds come from the Go build cache.
$(SQLC): tools/sqlc/go.mod tools/sqlc/go.sum
	cd tools/sqlc && $(GO) build -o $(SQLC) github.com/sqlc-dev/sqlc/cmd/sqlc

sqlc: $(SQLC) ## regenerate the typed query packages from queries/
	$(SQLC) generate

generate: sqlc $(CLI) ## regenerate everything generated: sqlc output and wiring
	$(CLI) generate

verify: $(SQLC) $(CLI) ## fail if any generated file is out of date (writes nothing)
	$(SQLC) diff
	$(CLI) generate --check
	@test -z "$$(gofmt -l $(GOFILES))" || { echo "gofmt needed:"; gofmt -l $(GOFILES); exit 1; }

new: $(CLI) ## scaffold a backfill: make new NAME=x (FROM=old copies backfill old)
	@test -n "$(NAME)" || { echo "usage: make new NAME=my_backfill"; exit 2; }
	$(CLI) new $(NAME)$(if $(FROM), --from $(FROM))

backfill: sqlc $(CLI) ## build dist/NAME/NAME: make backfill NAME=x
	@test -n "$(NAME)" || { echo "usage: make backfill NAME=fix_roles"; exit 2; }
	$(CLI) build $(NAME)

archive: $(CLI) ## archive a run for audit: make archive NAME=x RUN=42 [OUT=file.tar.gz] (DATABASE_URL: the ledger)
	@test -n "$(NAME)" -a -n "$(RUN)" || { echo "usage: make archive NAME=fix_roles RUN=42 [OUT=file.tar.gz]"; exit 2; }
	$(CLI) archive $(RUN) --dist dist/$(NAME) --out $(or $(OUT),dist/$(NAME)/$(NAME)-run-$(RUN).tar.gz)

# The demo's database is target.database of backfills/fix_roles/backfill.yaml.
demo: $(SQLC) $(CLI) ## run the demo on a throwaway cluster (or in the database DATABASE_URL names)
	tools/withpg.sh --database backfill_demo DATABASE_URL -- tools/demo/demo.sh

# The tests use TEST_DATABASE_URL, else a server on 127.0.0.1:5432, else a
# throwaway cluster; each test makes its own database.
test: $(SQLC) ## run every test against a real PostgreSQL
	SQLC=$(SQLC) tools/withpg.sh --try-local TEST_DATABASE_URL -- $(GO) test -count=1 -timeout 20m ./...

vet: ## go vet
	$(GO) vet ./...

schema: ## refresh queries/schema/schema.sql from DATABASE_URL (pg_dump --schema-only)
	@test -n "$$DATABASE_URL" || { echo "set DATABASE_URL to the database to snapshot"; exit 2; }
	pg_dump --schema-only --no-owner --no-privileges --exclude-schema=backfill "$$DATABASE_URL" > queries/schema/schema.sql

clean: ## remove bin/ and dist/
	rm -rf bin dist

bench: $(CLI) ## side-by-side benchmark (2,000,000 rows; several minutes; not part of make test)
	tools/withpg.sh --try-local BENCH_DATABASE_URL -- $(GO) run ./tools/bench $(BENCH_ARGS)

# cosign, pinned, for `make interop` only: never a dependency of the module.
# Each build takes several minutes on two cores (a large dependency graph).
COSIGN2 := $(BIN)/cosign-v2.6.5/cosign
COSIGN3 := $(BIN)/cosign-v3.1.3/cosign

$(COSIGN2):
	GOBIN=$(dir $@) $(GO) install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5

$(COSIGN3):
	GOBIN=$(dir $@) $(GO) install github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3

interop: $(SQLC) $(CLI) $(COSIGN2) $(COSIGN3) ## sign with cosign 2.x and 3.x as docs/reviewing.md says, submit to a throwaway ledger (not part of make test)
	tools/withpg.sh --try-local DATABASE_URL -- tools/interop/interop.sh $(COSIGN2) $(COSIGN3)

bench-load: $(CLI) ## what the application feels during a backfill, with pgbench as the application (1,000,000 rows; minutes; not part of make test)
	tools/withpg.sh --try-local BENCH_DATABASE_URL -- $(GO) run ./tools/benchload $(BENCH_LOAD_ARGS)
