package jobs

import (
	"context"
	"log/slog"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
)

// OpenRepository opens the existing [storage] repository; at a URL with no repository it fails
// (store.ErrNoRepository) rather than creating one there.
func OpenRepository(ctx context.Context, s config.Storage, log *slog.Logger) (*store.Repository, error) {
	return store.Open(ctx, storeOptions(s, log, true))
}

// CreateRepository opens the [storage] repository, creating it if there is none: for backups
// (the daemon, backup, migrate's snapshot) and init only.
func CreateRepository(ctx context.Context, s config.Storage, log *slog.Logger) (*store.Repository, error) {
	return store.Open(ctx, storeOptions(s, log, false))
}

// storeOptions maps [storage] to store options, in one place for every command and the daemon.
func storeOptions(s config.Storage, log *slog.Logger, mustExist bool) store.Options {
	return store.Options{
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
		MustExist:        mustExist,
		AppendOnly:       s.AppendOnly,
	}
}

// RetentionPolicy maps [retention] to the store's policy.
func RetentionPolicy(r config.Retention) store.Retention {
	return store.Retention{KeepLast: r.KeepLast, KeepHourly: r.KeepHourly, KeepDaily: r.KeepDaily,
		KeepWeekly: r.KeepWeekly, KeepMonthly: r.KeepMonthly, MinAge: r.MinAge.D()}
}
