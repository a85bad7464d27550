package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Targets lists the backends to check: name -> base URL. balancer.Pool satisfies it.
type Targets interface {
	HealthTargets() map[string]string
}

// Reporter receives check outcomes and health changes. balancer.Pool satisfies it.
type Reporter interface {
	// ReportCheck records one check: ok that it passed, answered that the backend sent an HTTP
	// answer (of any status) within the timeout, i.e. that it accepts connections.
	ReportCheck(name string, ok, answered bool, consecutiveOK int, at time.Time, errText, version string)
	SetHealthy(name string, up bool)
	IsHealthy(name string) bool
	EjectUnlessLast(name string) bool
}

// Check results, the values of lb_health_checks_total's result label.
const (
	resultOK       = "ok"
	resultFail     = "fail"
	resultDraining = "draining"
	// resultDegraded is a 503 {"status":"degraded"}: the app runs but says it cannot
	// serve (its database does not answer). It counts toward Fall like any failure;
	// the label lets an alert tell it apart from a backend that is gone.
	resultDegraded = "degraded"
)

// maxBody is how much of a health answer is read.
const maxBody = 4 << 10

// Checker checks every target with GET Path: 200 {"status":"ok"} passes (and gives the
// version), 503 {"status":"draining"} takes the backend out at once, anything else counts
// toward Fall (503 {"status":"degraded"} under a result label of its own). One pass admits a backend that has never been up; after that Rise applies.
// Checks come faster while a backend is changing state. Only transitions are logged.
type Checker struct {
	targets Targets
	rep     Reporter
	client  *http.Client
	logger  *slog.Logger
	cfg     atomic.Pointer[Config]
	checks  *prometheus.CounterVec
	jitter  func(n int64) int64
	now     func() time.Time
	kick    chan struct{}

	mu    sync.Mutex
	state map[string]*target
}

// target is the check state of one backend (name and URL).
type target struct {
	name, url string

	mu         sync.Mutex // one check at a time
	forgotten  bool
	admitted   bool // has been up: Rise applies from now on
	lastUp     bool
	okStreak   int
	failStreak int
}

// NewChecker returns a Checker. client nil means a private client that follows no redirects;
// reg (may be nil) receives lb_health_checks_total.
func NewChecker(cfg Config, targets Targets, rep Reporter, client *http.Client, logger *slog.Logger, reg prometheus.Registerer) (*Checker, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if client == nil {
		client = &http.Client{
			Transport: &http.Transport{
				MaxIdleConnsPerHost: 2,
				IdleConnTimeout:     30 * time.Second,
				DisableCompression:  true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	c := &Checker{
		targets: targets, rep: rep, client: client, logger: logger,
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lb_health_checks_total", Help: "Active health checks by backend and result (ok, fail, draining, degraded).",
		}, []string{"backend", "result"}),
		jitter: rand.Int64N,
		now:    time.Now,
		kick:   make(chan struct{}, 1),
		state:  map[string]*target{},
	}
	if reg != nil {
		if err := reg.Register(c.checks); err != nil {
			return nil, fmt.Errorf("register health metrics: %w", err)
		}
	}
	c.SetConfig(cfg)
	return c, nil
}

// SetConfig replaces the settings (reload); each backend's next check uses them.
func (c *Checker) SetConfig(cfg Config) {
	cfg = cfg.withDefaults()
	c.cfg.Store(&cfg)
}

// Sync asks a running Run to pick up added and removed targets now rather than at its next poll.
func (c *Checker) Sync() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// refresh matches the check state to the current targets. It returns the targets to check
// and those that left (forgotten: their series are deleted).
func (c *Checker) refresh() (cur, gone []*target) {
	want := c.targets.HealthTargets()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, t := range c.state {
		if u, ok := want[name]; !ok || u != t.url {
			delete(c.state, name)
			gone = append(gone, t)
		}
	}
	for name, u := range want {
		t, ok := c.state[name]
		if !ok {
			up := c.rep.IsHealthy(name) // kept across a restart of the checker
			t = &target{name: name, url: u, admitted: up, lastUp: up}
			c.state[name] = t
		}
		cur = append(cur, t)
	}
	for _, t := range gone {
		t.mu.Lock()
		t.forgotten = true
		t.mu.Unlock()
		if _, again := want[t.name]; !again {
			c.checks.DeletePartialMatch(prometheus.Labels{"backend": t.name})
		}
	}
	return cur, gone
}

// CheckAll checks every current target once, concurrently, and returns when all are done.
func (c *Checker) CheckAll(ctx context.Context) {
	cur, _ := c.refresh()
	var wg sync.WaitGroup
	for _, t := range cur {
		wg.Go(func() { c.check(ctx, t) })
	}
	wg.Wait()
}

// Run checks every target in its own loop until ctx is done, picking up target changes at
// each poll (the fast interval) or on Sync.
func (c *Checker) Run(ctx context.Context) {
	running := map[*target]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range running {
			cancel()
		}
		wg.Wait()
	}()
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-c.kick:
		}
		cur, gone := c.refresh()
		for _, t := range gone {
			if cancel, ok := running[t]; ok {
				cancel()
				delete(running, t)
			}
		}
		for _, t := range cur {
			if _, ok := running[t]; ok {
				continue
			}
			tctx, cancel := context.WithCancel(ctx)
			running[t] = cancel
			wg.Go(func() { c.loop(tctx, t) })
		}
		cfg := c.cfg.Load()
		poll.Reset(min(cfg.Interval, max(cfg.Interval/4, minFastInterval)))
	}
}

// loop checks one target until ctx is done.
func (c *Checker) loop(ctx context.Context, t *target) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		changing := c.check(ctx, t)
		timer.Reset(c.cfg.Load().nextDelay(changing, c.jitter))
	}
}

// probeResult is the outcome of one health request.
type probeResult struct {
	result   string
	answered bool // an HTTP answer arrived, whatever its status
	version  string
	errText  string
}

// probe sends one health request.
func (c *Checker) probe(ctx context.Context, cfg *Config, base string) probeResult {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+cfg.Path, nil)
	if err != nil {
		return probeResult{result: resultFail, errText: "bad health-check URL"}
	}
	req.Header.Set("User-Agent", "outrigger-lb-health")
	req.Header.Set("Accept", "application/json")
	res, err := c.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return probeResult{result: resultFail, errText: fmt.Sprintf("no answer within %s", cfg.Timeout)}
		}
		return probeResult{result: resultFail, errText: err.Error()}
	}
	pr := probeResult{result: resultFail, answered: true}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	_ = res.Body.Close()
	if err != nil {
		pr.errText = fmt.Sprintf("status %d, reading body: %v", res.StatusCode, err)
		return pr
	}
	var hb struct {
		Status  string `json:"status"`
		Version string `json:"version"`
	}
	jerr := json.Unmarshal(body, &hb)
	switch {
	case res.StatusCode == http.StatusOK && jerr == nil && hb.Status == "ok":
		pr.result, pr.version = resultOK, hb.Version
	case res.StatusCode == http.StatusServiceUnavailable && jerr == nil && hb.Status == "draining":
		pr.result, pr.version, pr.errText = resultDraining, hb.Version, "backend is draining"
	case res.StatusCode == http.StatusServiceUnavailable && jerr == nil && hb.Status == "degraded":
		pr.result, pr.version, pr.errText = resultDegraded, hb.Version, "backend is degraded (status 503, \"degraded\")"
	case jerr != nil:
		pr.errText = fmt.Sprintf("status %d, body is not health JSON", res.StatusCode)
	default:
		pr.errText = fmt.Sprintf("status %d, status %q", res.StatusCode, hb.Status)
	}
	return pr
}

// check probes t once and applies the result. It reports whether t is changing state
// (so the next check should come sooner).
func (c *Checker) check(ctx context.Context, t *target) (changing bool) {
	cfg := c.cfg.Load()
	pr := c.probe(ctx, cfg, t.url)
	if ctx.Err() != nil {
		return false // stopping: a cancelled probe says nothing about the backend
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.forgotten {
		return false
	}
	cur := c.rep.IsHealthy(t.name)
	if t.lastUp && !cur {
		t.okStreak = 0 // marked down elsewhere (passive): it must rise again
	}
	if cur {
		t.admitted = true
	}
	up := cur
	switch pr.result {
	case resultOK:
		t.okStreak++
		t.failStreak = 0
		if !up && (!t.admitted || t.okStreak >= cfg.Rise) {
			up = true
		}
	case resultDraining:
		t.okStreak = 0
		t.failStreak++
		up = false
	default:
		t.okStreak = 0
		t.failStreak++
		if up && t.failStreak >= cfg.Fall {
			up = false
		}
	}
	c.checks.WithLabelValues(t.name, pr.result).Inc()
	c.rep.ReportCheck(t.name, pr.result == resultOK, pr.answered, t.okStreak, c.now(), pr.errText, pr.version)
	if up != cur {
		c.rep.SetHealthy(t.name, up)
		if up {
			t.admitted = true
			c.logger.Info("backend up", "backend", t.name, "checks_ok", t.okStreak, "version", pr.version)
		} else {
			c.logger.Warn("backend down", "backend", t.name, "result", pr.result, "error", pr.errText, "failures", t.failStreak)
		}
	}
	t.lastUp = up
	return (!up && t.okStreak > 0) || (up && t.failStreak > 0)
}
