package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// Doctor probes the repository's protection with the configured credential: it creates a
// canary under doctor/ and tries to overwrite and delete it (store.ProbeProtection). With
// [storage] append_only, a credential that can do either is a problem: the flag alone protects
// nothing from whoever steals the credential.
func Doctor(ctx context.Context, repo *store.Repository) (store.ProtectionReport, error) {
	return repo.ProbeProtection(ctx)
}

// checkAppendOnly runs the doctor's probes when the daemon starts in append-only mode, so that
// a credential that can still overwrite or delete is reported at once, in the log, rather than
// trusted for the flag. It never stops the daemon: backups with a too-powerful credential are
// still backups.
func checkAppendOnly(ctx context.Context, repo *store.Repository, log *slog.Logger) {
	if !repo.AppendOnly() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep, err := repo.ProbeProtection(ctx)
	switch {
	case err != nil:
		log.Warn("append-only: could not probe the credential's protection; run 'tracevault doctor'", "err", err)
	case len(rep.Problems) > 0:
		log.Error("append-only is set, but the credential is not: a thief of it can destroy the repository", "problems", rep.Problems, "canary", rep.Canary)
	default:
		log.Info("append-only: the credential cannot overwrite or delete (probed)", "canary", rep.Canary)
	}
}
