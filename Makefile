# orderflow: `make run` starts the whole platform, `make test` runs every test.
GO ?= go

.PHONY: contracts run test test-short bench chaos build generate vet fmt

## run: the whole platform in one process, zero configuration (see README.md)
run: build
	./bin/orderflow dev

## build: the orderflow binary in bin/
build:
	$(GO) build -o bin/orderflow ./cmd/orderflow

## test: every test, with real PostgreSQL and NATS (DATABASE_URL/NATS_URL, else started here)
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...
	@# Fuzzing budgets are counts of inputs, not durations: a -fuzztime duration races Go 1.26's fuzz
	@# coordinator at its deadline ("context deadline exceeded" with no crasher; golang/go#75804).
	$(GO) test -run '^$$' -fuzz FuzzDecodeBody -fuzztime 10000x ./gateway/
	$(GO) test -run '^$$' -fuzz FuzzPathIDs -fuzztime 2000x ./gateway/
	$(GO) test -run '^$$' -fuzz FuzzGraphQLVariables -fuzztime 1500x ./gateway/
	@# The schema frontends' tools read: graphql-schema-linter's substantive rules (gateway/.graphql-schema-linterrc).
	@if command -v npx >/dev/null 2>&1; then npx --yes graphql-schema-linter@3.0.1 -c gateway gateway/schema.graphql; \
	else echo "npx not found: graphql-schema-linter skipped"; fi

## contracts: record the consumers' contracts again (contracts/; the tests fail while they differ)
contracts:
	ORDERFLOW_CONTRACTS=write $(GO) test -count=1 -run TestConsole ./e2e/
	ORDERFLOW_CONTRACTS=write $(GO) test -count=1 -run 'TestREADMEContract|TestServiceContracts' ./gateway/
	ORDERFLOW_CONTRACTS=write $(GO) test -count=1 -run TestReadModelEventContracts ./projections/
	ORDERFLOW_CONTRACTS=write $(GO) test -count=1 -run TestQueuedCommandsContract ./sagas/fulfillment/

## chaos: every target as its own process under an open-loop load, each killed in turn (twice),
## PostgreSQL killed, NATS restarted, each of three projector and saga workers frozen for 45 s;
## then every order, saga, stock figure, effect and read model checked
chaos:
	ORDERFLOW_CHAOS=full $(GO) test -count=1 -timeout 30m -v -run TestChaos ./chaos/

## test-short: the tests that need neither PostgreSQL nor NATS
test-short:
	$(GO) test -short ./...

## bench: throughput figures, each against a baseline measured in the same run
bench:
	$(GO) run ./cmd/orderflow-bench append --writers 16 --duration 5s --rounds 3
	@echo "event store adapters: appends (16 writers) and \$$all catch-up; esdb runs the real client against the protocol double (the client path, not EventStoreDB)"
	$(GO) test -run '^$$' -bench . -benchtime 3s ./eventstore/postgres/ ./eventstore/esdb/
	$(GO) run ./cmd/orderflow-bench saga --orders 2000 --rate 100 --duration 10s
	$(GO) test -run '^$$' -bench CommandOnALongStream -benchtime 2000x ./commands/
	$(GO) test -run '^$$' -bench WriterCacheMemory -benchtime 1x ./commands/
	$(GO) run ./cmd/orderflow-bench open --rates 100,200,250,400,600,800,1000 --products 50 --duration 30s --chart docs/bench/open-loop.svg
	$(GO) run ./cmd/orderflow-bench open --rates 200 --products 1 --duration 30s
	$(GO) run ./cmd/orderflow-bench rebuild --events 1000000
	$(GO) run ./cmd/orderflow-bench gateway --clients 32 --duration 2s --rounds 6
	$(GO) run ./cmd/orderflow-bench tracing --orders 2000 --rounds 2
	$(GO) run ./cmd/orderflow-bench workers --orders 1500 --events 200000 --pairs 3

## generate: regenerate gqlgen code after editing gateway/schema.graphql
generate:
	cd gateway && $(GO) tool gqlgen generate

fmt:
	gofmt -w $$(git ls-files '*.go')
