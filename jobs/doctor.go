package jobs

import (
	"context"

	"github.com/tracevault/tracevault/snapshot/store"
)

// Doctor probes the repository's protection with the configured credential: it creates a
// canary under doctor/ and tries to overwrite and delete it (store.ProbeProtection). With
// [storage] append_only, a credential that can do either is a problem: the flag alone protects
// nothing from whoever steals the credential.
func Doctor(ctx context.Context, repo *store.Repository) (store.ProtectionReport, error) {
	return repo.ProbeProtection(ctx)
}
