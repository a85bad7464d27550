package labfleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"outrigger/internal/lab"
	"outrigger/internal/pgtest"
)

// A Database is where the fleet's apps and lbs keep their state.
type Database interface {
	// Start brings the database up on hosts of l and returns the connection string
	// (DATABASE_URL and tls.acme.cache_database_url) apps and lbs use.
	Start(ctx context.Context, l *lab.Lab) (url string, err error)
}

// SinglePostgres is one PostgreSQL server (a throwaway pgtest cluster, fsync off) on host
// "db", its data under the host's directory: the lab's Close stops it and removes it.
type SinglePostgres struct{}

// Start adds host "db" to l and starts PostgreSQL on it, listening on its address.
func (SinglePostgres) Start(ctx context.Context, l *lab.Lab) (string, error) {
	h, err := l.AddHost(ctx, "db")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(h.Dir(), "postgres")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("labfleet: %w", err)
	}
	c, err := pgtest.StartCluster(ctx, pgtest.ClusterOptions{
		Dir:            dir,
		Port:           dbPort,
		ListenAddr:     h.Addr().String(),
		TrustedNetwork: lab.Prefix.String(),
		StartServer:    h.StartCmd,
	})
	if err != nil {
		return "", fmt.Errorf("labfleet: PostgreSQL on %s: %w", h.Name(), err)
	}
	return c.DSN("postgres"), nil
}
