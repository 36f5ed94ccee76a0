package gmtest

import (
	"context"
	"sync"
	"testing"

	"github.com/tracevault/tracevault/migrate"
)

// RaceUp starts `up` on two runners at once (each with its own driver and connection) and fails
// unless exactly one of them applied all the want migrations and the other none: the lock works.
func RaceUp(t *testing.T, a, b *migrate.Runner, want int) {
	t.Helper()
	var wg sync.WaitGroup
	applied := make([]int, 2)
	errs := make([]error, 2)
	for i, r := range []*migrate.Runner{a, b} {
		wg.Go(func() {
			done, err := r.Migrate(context.Background(), migrate.Op{Kind: "up"}, nil)
			applied[i], errs[i] = len(done), err
		})
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("runners failed: %v / %v", errs[0], errs[1])
	}
	if applied[0]+applied[1] != want || (applied[0] != 0 && applied[1] != 0) {
		t.Errorf("runners applied %d and %d migrations; want %d by one of them and 0 by the other", applied[0], applied[1], want)
	}
}
