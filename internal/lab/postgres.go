package lab

import (
	"context"
	"fmt"
	"testing"
	"time"

	"outrigger/internal/pgtest"
)

// StartPostgres starts a throwaway PostgreSQL server (a pgtest.Cluster: its own data
// directory, fsync off) on host h, listening on h's address at port and trusting every
// client of the lab's network. The lab's processes reach it at Cluster.DSN (TCP to the
// host's address); the test process, from any namespace, at Cluster.SocketDSN. A Crash of
// h kills the server; after Boot, Cluster.Start starts it again on the same data. The
// caller closes the cluster (before the lab, so its directory goes too).
func StartPostgres(ctx context.Context, h *Host, port int) (*pgtest.Cluster, error) {
	c, err := pgtest.StartCluster(ctx, pgtest.ClusterOptions{
		Port:           port,
		ListenAddr:     h.Addr().String(),
		TrustedNetwork: Prefix.String(),
		StartServer:    h.StartCmd,
	})
	if err != nil {
		return nil, fmt.Errorf("lab: PostgreSQL on %s: %w", h.name, err)
	}
	return c, nil
}

// PostgresForTest is StartPostgres for a test: it fails the test on error, closes the
// cluster at cleanup, and logs the server's log if the test failed.
func PostgresForTest(t testing.TB, h *Host, port int) *pgtest.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := StartPostgres(ctx, h, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab: postgres on %s, %s:\n%s", h.name, c.LogPath(), tailFile(c.LogPath(), 8<<10))
		}
		if err := c.Close(); err != nil {
			t.Errorf("lab: close PostgreSQL on %s: %v", h.name, err)
		}
	})
	return c
}
