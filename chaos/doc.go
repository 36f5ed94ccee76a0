// Package chaos holds the chaos suite of `make chaos` (and its reduced form in `make test`): the
// daemon backs up the local stack under `demo load` while faults are injected in turn, and every
// restored snapshot is checked against the load's ledger. Only tests live here; the fault proxy
// it uses is internal/faultproxy.
package chaos
