// Command bench measures tracevault against the plain tools it replaces, on the local stack
// (internal/devstack), and writes bench/RESULTS.md and bench/results.json. `make bench` runs it.
//
// Every step runs at 1x and 4x data; in each run the tracevault side and its baseline run one
// after the other, in alternating order, and the medians of -runs runs are compared, so that the
// load other users put on the machine falls on both sides alike. Each side runs as a child
// process (the tracevault binary, or the baseline's shell pipeline) and its peak RSS and CPU come
// from the kernel's accounting of that child.
//
//	go run ./bench -scale small          # minutes: 20k/80k traces, pgbench -s 2/8
//	go run ./bench -scale medium         # 20-30 min: 100k/400k traces, pgbench -s 8/32
//	go run ./bench                       # the size: 1.25M/5M traces, pgbench -s 25/100
//	go run ./bench -traces 100000 -pgbench 5 -profile
package main
