# tracevault — developer entry points. Every target is safe to re-run.
GO       ?= go
BIN      := bin/tracevault
STACK    := bash internal/devstack/stack.sh
# How many demo traces `make run` seeds (observations and scores scale with it).
TRACES   ?= 20000

.PHONY: all build run test check vet fmt fmt-check bench bench-micro chaos chaos-modern fuzz-smoke stack-up stack-down stack-status clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tracevault

## run: the main job on the embedded default — local stack, demo schema and data (with the blob
## container's files), daemon + status page. run.toml backs up PostgreSQL (and streams its changes),
## ClickHouse, ZooKeeper and the blob container, and drills the first set as soon as it is taken.
## Beside the 18.16 cluster, ch-modern gets Langfuse v4's world (demo seed --modern) and a daemon
## of its own (.stack/modern.toml: one [clickhouse] per configuration), whose stack-backup job
## backs it up into .stack/repo-modern; its status page is one port up. Both stop together.
run: build stack-up
	./$(BIN) --config .stack/run.toml migrate --target clickhouse up
	./$(BIN) --config .stack/run.toml migrate --target postgres up
	./$(BIN) --config .stack/run.toml demo seed --traces $(TRACES)
	./$(BIN) --config .stack/modern.toml demo seed --modern --database langfuse --traces $(TRACES)
	./$(BIN) --config .stack/modern.toml serve & trap 'kill $$! 2>/dev/null' EXIT INT TERM; ./$(BIN) --config .stack/run.toml serve

## test: the whole suite against a real local stack (what CI runs). KEEP_STACK=1 leaves it running.
test: build stack-up
	$(STACK) test-tools
	@status=0; $(MAKE) --no-print-directory check || status=$$?; \
	if [ -z "$$KEEP_STACK" ]; then $(STACK) down; fi; exit $$status

check: vet fmt-check
	TRACEVAULT_DISRUPTIVE=1 $(GO) test -count=1 -p 1 -timeout 45m ./...
	$(MAKE) --no-print-directory fuzz-smoke

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: every step against its baseline on generated data at 1x and 4x, medians of 3 runs, in
## two worlds: the 18.16 cluster (with PostgreSQL) and Langfuse v4's tables on ch-modern (26.7,
## patch parts from lightweight updates); writes bench/RESULTS.md and bench/results.json (see
## bench/README.md). The default is the issue's size (5M traces and pgbench -s 100 at 4x, hours);
## SCALE=small takes minutes, SCALE=medium (100k / 400k traces, pgbench -s 8 / 32) 20-30 min on a
## quiet 2-core machine, SCALE=10x measures 1M and 10M traces, pgbench -s 50 and 500 (a quiet
## machine, most of a day). Seeded databases are kept and reused by the next run with the same
## data (-reseed seeds again). More flags:
## make bench SCALE=small BENCHFLAGS='-world modern -profile -only "clickhouse backup"'
SCALE      ?=
BENCHFLAGS ?=
bench: build stack-up
	$(GO) run ./bench -tracevault $(BIN) $(if $(SCALE),-scale $(SCALE)) $(BENCHFLAGS)

## bench-micro: the packages' Go benchmarks (one partition, one object) against the running stack.
bench-micro: build stack-up
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

## chaos: the full chaos suite (chaos/) against the running stack, which it stops and
## kills service by service: the daemon backs up every 5 s under `demo load` while each fault is
## injected in turn (CHAOS_ROUNDS=<n> repeats them), then the modern run (chaos-modern). CI runs
## the reduced forms inside the normal suite. Each summary is printed last; CHAOS_SEED=<n>
## replays a run's random choices.
chaos: build stack-up
	TRACEVAULT_DISRUPTIVE=1 TRACEVAULT_CHAOS=full TRACEVAULT_CHAOS_SEED=$(CHAOS_SEED) TRACEVAULT_CHAOS_ROUNDS=$(CHAOS_ROUNDS) $(GO) test -count=1 -v -timeout 240m -run '^TestChaos(Modern|PITR)?$$' ./chaos/

## chaos-modern: the modern chaos run alone: ch-modern (ClickHouse 26.7) backed up every 3 s, in
## logical then freeze mode, under `demo load --modern` (lightweight updates and deletes), with
## ch-modern killed -9 and the storage failing; every restored snapshot is held row by row
## against the load's ledger.
chaos-modern: build stack-up
	TRACEVAULT_DISRUPTIVE=1 TRACEVAULT_CHAOS=full TRACEVAULT_CHAOS_SEED=$(CHAOS_SEED) $(GO) test -count=1 -v -timeout 60m -run '^TestChaosModern$$' ./chaos/

## fuzz-smoke: every Fuzz target of every package, FUZZTIME each (default 10s), found with
## `go test -list`, so a new target runs without being listed here. A crash fails the run and
## leaves its input in the package's testdata/fuzz: commit it with the fix, and it runs as a
## regular test from then on. Longer runs: make fuzz-smoke FUZZTIME=10m, or one target:
## go test -run '^$$' -fuzz '^FuzzSplit$$' -fuzztime 30m ./migrate/
## Minimising each new interesting input may take up to a minute by default, which would eat
## a short budget, hence the bound. Go 1.26's fuzz coordinator can fail a target with a bare
## "context deadline exceeded" as -fuzztime ends (golang/go#75804): with no failing input
## written, that run is not counted as a failure.
FUZZTIME         ?= 10s
FUZZMINIMIZETIME ?= 5s
fuzz-smoke:
	@list=$$($(GO) test -list '^Fuzz' ./...) || { echo "$$list"; exit 1; }; \
	targets=$$(echo "$$list" | awk '/^Fuzz/ { names = names " " $$1; next } /^ok/ { n = split(names, a, " "); for (i = 1; i <= n; i++) print $$2, a[i]; names = "" }'); \
	if [ -z "$$targets" ]; then echo "fuzz-smoke: no Fuzz targets found"; exit 1; fi; \
	set -- $$targets; status=0; failed=""; \
	while [ $$# -gt 1 ]; do \
		pkg=$$1; name=$$2; shift 2; \
		echo "== $$name in $$pkg, $(FUZZTIME)"; \
		log=$$(mktemp); rc=0; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) "$$pkg" >"$$log" 2>&1 || rc=$$?; \
		cat "$$log"; \
		if [ $$rc -ne 0 ] && ! grep -q 'Failing input written' "$$log" && grep -qxE '[[:space:]]*context deadline exceeded' "$$log"; then \
			echo "fuzz-smoke: $$name: no failing input, only the Go fuzz coordinator's race at the end of -fuzztime (golang/go#75804, fixed in Go 1.27): not counted"; rc=0; \
		fi; \
		rm -f "$$log"; \
		[ $$rc -eq 0 ] || { status=1; failed="$$failed $$pkg.$$name"; }; \
	done; \
	if [ $$status -ne 0 ]; then echo "fuzz-smoke: failed:$$failed"; fi; \
	exit $$status

stack-up:
	$(STACK) up

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status

clean:
	rm -rf bin
