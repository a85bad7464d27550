package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"outrigger/internal/admin"
	"outrigger/internal/balancer"
	"outrigger/internal/clientip"
	"outrigger/internal/lbconfig"
)

// reloadRecord remembers the outcome of the last configuration load for the
// admin API (GET /api/reload, the status page) and exports it as
// lb_config_last_reload_successful and
// lb_config_last_reload_success_timestamp_seconds (Prometheus's own names).
type reloadRecord struct {
	ok, successTime prometheus.Gauge

	mu   sync.Mutex
	last admin.Reload
}

func newReloadRecord(reg prometheus.Registerer, path string, start time.Time) (*reloadRecord, error) {
	r := &reloadRecord{
		ok: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lb_config_last_reload_successful",
			Help: "1 if the last configuration load (start, SIGHUP or POST /api/reload) succeeded, 0 if the file was refused.",
		}),
		successTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lb_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully, in Unix seconds.",
		}),
	}
	for _, c := range []prometheus.Collector{r.ok, r.successTime} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register reload metrics: %w", err)
		}
	}
	r.record(admin.Reload{Time: start, OK: true, Trigger: "start", Config: path})
	return r, nil
}

// record stores the outcome of one load.
func (r *reloadRecord) record(res admin.Reload) admin.Reload {
	if res.RestartNeeded == nil {
		res.RestartNeeded = []string{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	res.LastSuccess = r.last.LastSuccess
	if res.OK {
		res.LastSuccess = res.Time
		r.ok.Set(1)
		r.successTime.Set(float64(res.Time.UnixNano()) / 1e9)
	} else {
		r.ok.Set(0)
	}
	r.last = res
	return res
}

func (r *reloadRecord) get() admin.Reload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Reload re-reads the config file for the admin API (POST /api/reload).
func (s *lbServer) Reload(ctx context.Context) admin.Reload {
	res, _ := s.reload(ctx, "api")
	return res
}

// LastReload returns the outcome of the last configuration load.
func (s *lbServer) LastReload() admin.Reload { return s.reloads.get() }

// reload applies the config file (see applyConfig) and records the outcome;
// trigger says what asked for it ("signal" or "api").
func (s *lbServer) reload(ctx context.Context, trigger string) (admin.Reload, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	keys, err := s.applyConfig(ctx)
	res := admin.Reload{Time: time.Now(), OK: err == nil, Trigger: trigger, Config: s.cfgPath, RestartNeeded: keys}
	if err != nil {
		// Load names the file on the first line; the outcome names it once, in Config.
		res.Error = strings.TrimPrefix(strings.TrimSpace(err.Error()), "config "+s.cfgPath+": ")
	}
	return s.reloads.record(res), err
}

// applyConfig re-reads the config file, the token file and the certificate
// files and applies backends, policy, health checks, proxy settings, limits
// and trusted proxies without dropping connections. It returns the keys that
// changed but need a restart. A file that fails is refused with a log line
// naming the problem, and the running config stays. Backends added or
// removed through the admin API are an overlay: the file's list replaces
// them, and the log says what went. The caller holds reloadMu.
func (s *lbServer) applyConfig(_ context.Context) ([]string, error) {
	old := s.cfg.Load()
	refuse := func(err error) ([]string, error) {
		s.logger.Error("reload refused, running config kept", "path", s.cfgPath, "err", err.Error())
		return nil, err
	}
	cfg, err := lbconfig.Load(s.cfgPath)
	if err != nil {
		return refuse(err)
	}
	token, err := lbconfig.ReadToken(cfg.Admin.TokenFile)
	if err != nil {
		return refuse(fmt.Errorf("admin.token_file: %w", err))
	}
	resolver, err := clientip.NewResolver(cfg.TrustedProxies)
	if err != nil {
		return refuse(fmt.Errorf("trusted_proxies: %w", err))
	}
	policy, err := balancer.NewPolicy(cfg.Policy)
	if err != nil {
		return refuse(fmt.Errorf("policy: %w", err))
	}
	// Certificates last: each keeps serving the old one if its files fail.
	if s.certs != nil {
		if err := s.certs.Reload(); err != nil {
			return refuse(fmt.Errorf("tls: %w", err))
		}
	}
	if s.adminCert != nil {
		if err := s.adminCert.Reload(); err != nil {
			return refuse(fmt.Errorf("admin certificate: %w", err))
		}
	}

	keys := lbconfig.RestartNeeded(old, cfg)
	if len(keys) > 0 {
		s.logger.Warn("reload: these changes need a restart of lb and were not applied", "keys", keys)
	}
	// Keep what only a restart can change, so later reloads compare against what runs.
	cfg.Listen, cfg.HTTPListen, cfg.StateFile = old.Listen, old.HTTPListen, old.StateFile
	cfg.Admin.Listen, cfg.Admin.CertFile, cfg.Admin.KeyFile = old.Admin.Listen, old.Admin.CertFile, old.Admin.KeyFile
	if old.TLS != nil && cfg.TLS != nil {
		hsts := cfg.TLS.HSTS
		t := *old.TLS
		t.HSTS = hsts // applied per response: no restart needed
		cfg.TLS = &t
	} else {
		cfg.TLS = old.TLS
	}

	before := s.pool.Snapshot()
	inOld := map[string]bool{}
	for _, b := range old.Backends {
		inOld[b.Name] = true
	}
	var overlayAdded []string
	running := map[string]bool{}
	for _, st := range before {
		running[st.Name] = true
		if !inOld[st.Name] {
			overlayAdded = append(overlayAdded, st.Name)
		}
	}
	states, err := s.state.load()
	if err != nil {
		s.logger.Warn("reload: state file unreadable, kept backends keep their states", "err", err.Error())
		states = map[string]bool{}
	}
	added, removed, err := s.pool.Reconcile(specs(cfg, states))
	if err != nil {
		return refuse(err) // validated above: not expected
	}
	for _, name := range removed {
		s.passive.Forget(name)
		if slices.Contains(overlayAdded, name) {
			s.logger.Warn("reload: dropped a backend added through the admin API (not in the config file)", "backend", name)
		}
	}
	for _, name := range added {
		if inOld[name] && !running[name] {
			s.logger.Warn("reload: restored a backend removed through the admin API (it is in the config file)", "backend", name)
		}
	}

	s.token.Store(&token)
	s.resolver.Store(resolver)
	s.proxy.SetPolicy(policy)
	s.proxy.SetConfig(proxyConfig(cfg, resolver))
	s.passive.SetFall(cfg.HealthCheck.Fall)
	s.checker.SetConfig(healthConfig(cfg))
	s.cfg.Store(cfg)
	s.checker.Sync()
	s.limiter.SetLimit(cfg.Limits.MaxConns)
	for _, f := range s.public {
		f.Refresh()
	}
	s.saveState()
	s.logger.Info("config reloaded", "path", s.cfgPath, "backends", len(cfg.Backends),
		"added", nonNil(added), "removed", nonNil(removed), "policy", cfg.Policy)
	return keys, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
