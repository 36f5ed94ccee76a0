# tracevault — developer entry points. Every target is safe to re-run.
GO       ?= go
BIN      := bin/tracevault
STACK    := bash deploy/stack/stack.sh
# How many demo traces `make run` seeds (observations and scores scale with it).
TRACES   ?= 20000

.PHONY: all build run test check vet fmt fmt-check bench stack-up stack-down stack-status clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tracevault

## run: the main job on the embedded default — local stack, demo schema and data, daemon + status page.
run: build stack-up
	./$(BIN) --config .stack/run.toml migrate --target clickhouse up
	./$(BIN) --config .stack/run.toml migrate --target postgres up
	./$(BIN) --config .stack/run.toml demo seed --traces $(TRACES)
	./$(BIN) --config .stack/run.toml serve

## test: the whole suite against a real local stack (what CI runs). KEEP_STACK=1 leaves it running.
test: build stack-up
	$(STACK) test-tools
	@status=0; $(MAKE) --no-print-directory check || status=$$?; \
	if [ -z "$$KEEP_STACK" ]; then $(STACK) down; fi; exit $$status

check: vet fmt-check
	$(GO) test -count=1 -p 1 -timeout 45m ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: performance benchmarks against the running stack (see README, "Benchmarks").
bench: build stack-up
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

stack-up:
	$(STACK) up

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status

clean:
	rm -rf bin
