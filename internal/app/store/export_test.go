package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// MigrateLockKey is exported for tests that hold the migration lock.
const MigrateLockKey = migrateLockKey

// MigrateWithin is Migrate with a lock timeout and number of attempts of the test's choosing.
func MigrateWithin(ctx context.Context, pool *pgxpool.Pool, lockTimeout time.Duration, attempts int) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	return migrate(ctx, pool, ms, lockTimeout, attempts)
}

// MigrateThese applies ms (test migrations) as Migrate applies the embedded ones, once.
func MigrateThese(ctx context.Context, pool *pgxpool.Pool, ms []Migration) error {
	return migrate(ctx, pool, ms, MigrateLockTimeout, 1)
}
