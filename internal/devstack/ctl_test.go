package devstack

import (
	"context"
	"errors"
	"testing"
)

// A plain `go test ./...` runs packages in parallel against the shared stack: a test that
// would stop a service there must be refused before stack.sh runs, not after it stopped it.
func TestStopRefusedUnlessAsked(t *testing.T) {
	for _, v := range []string{"", "0", "yes"} {
		t.Setenv(DisruptiveVar, v)
		e := &Env{Dir: t.TempDir()}
		for verb, op := range map[string]func(context.Context, string) error{"stop": e.Stop, "start": e.Start} {
			if err := op(context.Background(), "ch1"); !errors.Is(err, errNotDisruptive) {
				t.Errorf("%s=%q: %s: got %v, want the refusal", DisruptiveVar, v, verb, err)
			}
		}
	}
}
