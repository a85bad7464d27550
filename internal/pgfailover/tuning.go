package pgfailover

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Timeouts are pg_auto_failover's failure-detection settings: the first six are the
// monitor's (PostgreSQL settings pgautofailover.*, set with ALTER SYSTEM on the monitor),
// NetworkPartition is every keeper's (pg_autoctl config set
// timeout.network_partition_timeout).
type Timeouts struct {
	// HealthCheckPeriod is how often the monitor checks each node (health_check_period).
	HealthCheckPeriod time.Duration
	// HealthCheckTimeout bounds one check's connection attempt (health_check_timeout).
	HealthCheckTimeout time.Duration
	// HealthCheckMaxRetries and HealthCheckRetryDelay: a failed check is retried this many
	// times, this long apart, before the node counts as failing.
	HealthCheckMaxRetries int
	HealthCheckRetryDelay time.Duration
	// NodeUnhealthy is how long a node must fail its checks and not report to the monitor
	// before the monitor fails it over (node_considered_unhealthy_timeout).
	NodeUnhealthy time.Duration
	// PrimaryDemote is how long the monitor waits for an unreachable primary to demote
	// itself before it promotes the secondary (primary_demote_timeout).
	PrimaryDemote time.Duration
	// NetworkPartition is how long a primary that reaches neither the monitor nor its
	// standby keeps taking writes before it demotes itself. Whole seconds.
	NetworkPartition time.Duration
}

// Tuned are the timeouts this project runs with: a crashed primary host is replaced in
// about 12 s instead of the defaults' 50 s (measured in DEPENDENCIES.md §6). PrimaryDemote
// (8 s) stays above NetworkPartition (5 s): an isolated primary stops taking writes before
// the monitor may promote its standby.
var Tuned = Timeouts{
	HealthCheckPeriod:     time.Second,
	HealthCheckTimeout:    time.Second,
	HealthCheckMaxRetries: 1,
	HealthCheckRetryDelay: 500 * time.Millisecond,
	NodeUnhealthy:         5 * time.Second,
	PrimaryDemote:         8 * time.Second,
	NetworkPartition:      5 * time.Second,
}

// Fast are the lab's timeouts (internal/labfleet, make lab): Tuned with the demote wait
// at 5 s and the keepers' partition timeout at 3 s, still 2 s apart, so that a crashed
// primary host is replaced about 3 s sooner. Production keeps Tuned: a keeper that misses
// the monitor for 3 s on a busy network demotes its primary, an outage of its own.
var Fast = Timeouts{
	HealthCheckPeriod:     time.Second,
	HealthCheckTimeout:    time.Second,
	HealthCheckMaxRetries: 1,
	HealthCheckRetryDelay: 500 * time.Millisecond,
	NodeUnhealthy:         5 * time.Second,
	PrimaryDemote:         5 * time.Second,
	NetworkPartition:      3 * time.Second,
}

// Defaults are pg_auto_failover 2.0's own values, for reference.
var Defaults = Timeouts{
	HealthCheckPeriod:     5 * time.Second,
	HealthCheckTimeout:    5 * time.Second,
	HealthCheckMaxRetries: 2,
	HealthCheckRetryDelay: 2 * time.Second,
	NodeUnhealthy:         20 * time.Second,
	PrimaryDemote:         30 * time.Second,
	NetworkPartition:      20 * time.Second,
}

// minDemoteMargin is how much longer than a keeper's partition timeout the monitor must
// wait before promoting: the keeper notices the partition only at its next loop (every
// second), and then needs a moment to stop taking writes.
const minDemoteMargin = 2 * time.Second

// Validate refuses timeouts that could give two primaries, or that pg_auto_failover cannot
// take (non-positive values, a partition timeout that is not whole seconds).
func (t Timeouts) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HealthCheckPeriod", t.HealthCheckPeriod}, {"HealthCheckTimeout", t.HealthCheckTimeout},
		{"HealthCheckRetryDelay", t.HealthCheckRetryDelay}, {"NodeUnhealthy", t.NodeUnhealthy},
		{"PrimaryDemote", t.PrimaryDemote}, {"NetworkPartition", t.NetworkPartition},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s is %v, want > 0", d.name, d.v))
		} else if d.v%time.Millisecond != 0 {
			errs = append(errs, fmt.Errorf("%s is %v, want whole milliseconds", d.name, d.v))
		}
	}
	if t.HealthCheckMaxRetries < 0 {
		errs = append(errs, fmt.Errorf("HealthCheckMaxRetries is %d, want >= 0", t.HealthCheckMaxRetries))
	}
	if t.NetworkPartition%time.Second != 0 {
		errs = append(errs, fmt.Errorf("NetworkPartition is %v, want whole seconds (pg_autoctl's setting is in seconds)", t.NetworkPartition))
	}
	if t.PrimaryDemote < t.NetworkPartition+minDemoteMargin {
		errs = append(errs, fmt.Errorf("PrimaryDemote %v must be at least %v above NetworkPartition %v, or an isolated primary may still take writes when its standby is promoted (two primaries)",
			t.PrimaryDemote, minDemoteMargin, t.NetworkPartition))
	}
	return errors.Join(errs...)
}

// monitorSettings are the monitor's PostgreSQL settings for t, in milliseconds where they
// are durations, in the order OPERATIONS.md lists them.
func (t Timeouts) monitorSettings() [][2]string {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	return [][2]string{
		{"pgautofailover.health_check_period", ms(t.HealthCheckPeriod)},
		{"pgautofailover.health_check_timeout", ms(t.HealthCheckTimeout)},
		{"pgautofailover.health_check_max_retries", strconv.Itoa(t.HealthCheckMaxRetries)},
		{"pgautofailover.health_check_retry_delay", ms(t.HealthCheckRetryDelay)},
		{"pgautofailover.node_considered_unhealthy_timeout", ms(t.NodeUnhealthy)},
		{"pgautofailover.primary_demote_timeout", ms(t.PrimaryDemote)},
	}
}

// MonitorSQL is the SQL that applies t's monitor settings, as an operator runs it on the
// monitor (psql as postgres, database pg_auto_failover): ALTER SYSTEM lines, then a reload.
func (t Timeouts) MonitorSQL() []string {
	var out []string
	for _, s := range t.monitorSettings() {
		out = append(out, fmt.Sprintf("ALTER SYSTEM SET %s = %s;", s[0], s[1]))
	}
	return append(out, "SELECT pg_reload_conf();")
}

// KeeperArgs is the pg_autoctl command line (after "pg_autoctl") that applies t's keeper
// setting to the node whose data directory is pgdata.
func (t Timeouts) KeeperArgs(pgdata string) []string {
	return []string{"config", "set", "--pgdata", pgdata,
		"timeout.network_partition_timeout", strconv.FormatInt(int64(t.NetworkPartition/time.Second), 10)}
}
