# Chronicle's make targets. `make test` is what CI runs.
GO ?= go
PKGS := ./...

.PHONY: test bench bench-scale lint services demo demo-observe build docs

## test: run every test with the race detector against real PostgreSQL and NATS.
test:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## bench: measure Chronicle beside raw pgx / nats.go baselines and print one table.
bench: services
	$(GO) run ./internal/bench $(BENCHFLAGS)

## bench-scale: the scale curve (10k, 1M and 10M events): append and read rates, filtered catch-up, disk per event. Minutes; not in CI.
bench-scale: services
	$(GO) run ./internal/bench -only scale $(BENCHFLAGS)

## lint: gofmt check and go vet.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## services: start PostgreSQL and NATS locally when they are not answering.
services:
	@bash scripts/services.sh

## build: build every package and command.
build:
	$(GO) build $(PKGS)

## demo: run the bank example end to end (local PostgreSQL + in-process NATS, or in memory).
demo:
	$(GO) run ./examples/bank/cmd/demo

## demo-observe: the demo, then the bank service serving /metrics (Prometheus), the console and /readyz until Ctrl-C. ADDR=127.0.0.1:8080, OBSERVEFLAGS=-enable-actions -traces.
ADDR ?= 127.0.0.1:8080
demo-observe:
	$(GO) run ./examples/bank/cmd/observe -addr $(ADDR) $(OBSERVEFLAGS)

## docs: compile, vet and gofmt-check every Go block of README.md and docs/ (also part of make test).
docs:
	$(GO) test -count=1 ./internal/docstest
