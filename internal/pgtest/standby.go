package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// StartStandby makes a streaming replica of primary (pg_basebackup -R with WAL streamed, over
// primary's unix socket) in a new directory, starts it with opts (opts.Dir must be empty) and
// returns it once it accepts connections, which are read-only until Promote. For a
// replication that loses no commit, start the primary with the Settings
// "synchronous_standby_names=*" and "synchronous_commit=on".
func StartStandby(ctx context.Context, primary *Cluster, opts ClusterOptions) (*Cluster, error) {
	if opts.Dir != "" {
		return nil, fmt.Errorf("pgtest: StartStandby makes its own directory; Dir must be empty")
	}
	return startCluster(ctx, opts, func(c *Cluster, ctx context.Context) error {
		if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); err == nil {
			return nil
		}
		port := primary.port
		if port == 0 {
			port = socketPort
		}
		cmd := c.command(ctx, "pg_basebackup", "-D", c.dataDir(), "-R", "-X", "stream", "-c", "fast",
			"--no-sync", "-h", primary.dir, "-p", strconv.Itoa(port), "-U", "postgres")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pg_basebackup from %s: %w: %s", primary.dir, err, bytes.TrimSpace(out))
		}
		return nil
	})
}

// Promote turns a standby into a primary (pg_ctl promote) and waits until it accepts writes.
func (c *Cluster) Promote(ctx context.Context) error {
	out, err := c.command(ctx, "pg_ctl", "promote", "-w", "-t", "60", "-D", c.dataDir()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl promote %s: %w: %s", c.dataDir(), err, bytes.TrimSpace(out))
	}
	return nil
}
