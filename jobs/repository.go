package jobs

import (
	"context"
	"log/slog"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
)

// OpenRepository opens the [storage] repository; every command and the daemon use it, so the
// mapping from configuration to store options lives in one place.
func OpenRepository(ctx context.Context, s config.Storage, log *slog.Logger) (*store.Repository, error) {
	return store.Open(ctx, store.Options{
		URL:              s.URL,
		ConnectionString: s.ConnectionString.Reveal(),
		AccountName:      s.AccountName,
		AccountKey:       s.AccountKey.Reveal(),
		SASToken:         s.SASToken.Reveal(),
		Endpoint:         s.Endpoint,
		BlockSize:        int64(s.BlockSize),
		Concurrency:      s.Concurrency,
		CompressionLevel: s.CompressionLevel,
		Recipients:       s.Encryption.Recipients,
		IdentityFile:     s.Encryption.IdentityFile,
		Passphrase:       s.Encryption.Passphrase.Reveal(),
		Log:              log,
	})
}

// RetentionPolicy maps [retention] to the store's policy.
func RetentionPolicy(r config.Retention) store.Retention {
	return store.Retention{KeepLast: r.KeepLast, KeepHourly: r.KeepHourly, KeepDaily: r.KeepDaily,
		KeepWeekly: r.KeepWeekly, KeepMonthly: r.KeepMonthly, MinAge: r.MinAge.D()}
}
