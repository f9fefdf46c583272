# Two commands matter: `make dev` starts everything locally, `make test`
# runs every test. Both need only Go and the PostgreSQL server binaries.

GO ?= go
CLIPPER := $(GO) run ./cmd/clipper

.PHONY: dev test build generate types migrate seed bench clean help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

dev: ## start Postgres (local, reused), migrate, seed, run the daemon
	$(CLIPPER) dev

clean: ## delete the local dev cluster (wherever it lives), .dev and bin
	$(CLIPPER) dev --reset
	rm -rf bin

test: ## run the full test suite against a throwaway Postgres
	$(CLIPPER) testdb -- ./scripts/test.sh

build: ## build bin/clipper
	$(GO) build -o bin/clipper ./cmd/clipper

generate: ## regenerate typed Go queries (sqlc) and the schema snapshot db/schema/schema.sql from the migrations
	cd db && $(GO) tool sqlc generate
	$(CLIPPER) testdb -- $(GO) run ./internal/tools/schemadump/cmd/schemadump

types: ## regenerate the TypeScript types (supabase-js, Drizzle) in db/typescript/generated from the migrations
	./scripts/types.sh

bench: ## the benchmark at full volume (1M jobs, 10M events); see docs/performance.md
	$(CLIPPER) bench

migrate: ## apply migrations to DATABASE_URL
	$(CLIPPER) migrate

seed: ## load dev data into DATABASE_URL
	$(CLIPPER) seed
