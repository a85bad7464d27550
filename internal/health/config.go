// Package health runs active health checks against backends and counts passive failures
// seen on real traffic. It drives the balancer only through the small Targets and Reporter
// interfaces, which use builtin types so neither package imports the other.
package health

import "time"

// Config holds the health-check settings (the config's health_check section).
type Config struct {
	// Path is requested with GET on each backend, e.g. /healthz.
	Path string
	// Interval is the time between checks of a backend whose state is steady.
	Interval time.Duration
	// Timeout bounds one check (connect to end of body).
	Timeout time.Duration
	// Rise is how many consecutive passes bring a backend that went down back up.
	Rise int
	// Fall is how many consecutive failures take a backend down (checks and real traffic).
	Fall int
}

// Defaults as in DESIGN.md.
const (
	DefaultPath     = "/healthz"
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = time.Second
	DefaultRise     = 2
	DefaultFall     = 2
)

// minFastInterval is the floor of the faster re-check interval used while a backend changes state.
const minFastInterval = 250 * time.Millisecond

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Rise <= 0 {
		c.Rise = DefaultRise
	}
	if c.Fall <= 0 {
		c.Fall = DefaultFall
	}
	return c
}

// nextDelay is the wait before the next check: Interval, or Interval/4 while the backend is
// changing state; jitter(n) returns a value in [0, n) and spreads the result over ±10%. The
// fast re-check never comes sooner than 250 ms (after jitter) nor later than Interval would.
func (c Config) nextDelay(changing bool, jitter func(n int64) int64) time.Duration {
	d := c.Interval
	if changing {
		d = c.Interval / 4
	}
	if spread := int64(d) / 5; spread > 0 {
		d += time.Duration(jitter(spread)) - time.Duration(spread/2)
	}
	if changing {
		d = min(c.Interval, max(d, minFastInterval))
	}
	return d
}
