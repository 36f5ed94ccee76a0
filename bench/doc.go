// Command bench measures tracevault against the plain tools it replaces, on the local stack
// (internal/devstack), and writes bench/RESULTS.md and bench/results.json. `make bench` runs it.
//
// Every step runs at 1x and 4x data (or the -scales asked for); in each run the tracevault side
// and its baseline run one after the other, in alternating order, and the medians of -runs runs
// are compared, so that the load other users put on the machine falls on both sides alike. Each
// side runs as a child process (the tracevault binary, or the baseline's shell pipeline) and its
// peak RSS and CPU come from the kernel's accounting of that child. The ClickHouse steps run in
// two worlds (world.go): the 18.16 cluster with the demo's v2-era schema, and Langfuse v4's
// tables on ch-modern with patch parts from lightweight updates. Seeded databases are kept and
// reused while their seed mark matches (world.cachedSeed, ensurePG).
//
//	go run ./bench -scale small          # minutes: 20k/80k traces, pgbench -s 2/8
//	go run ./bench -scale medium         # 20-30 min: 100k/400k traces, pgbench -s 8/32
//	go run ./bench                       # the size: 1.25M/5M traces, pgbench -s 25/100
//	go run ./bench -scale 10x            # 1M/10M traces, pgbench -s 50/500
//	go run ./bench -world modern -traces 100000 -profile
package main
