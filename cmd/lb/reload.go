package main

import (
	"context"
	"fmt"
	"slices"

	"outrigger/internal/balancer"
	"outrigger/internal/clientip"
	"outrigger/internal/lbconfig"
)

// reload re-reads the config file, the token file and the certificate
// files (SIGHUP) and applies backends, policy, health checks, proxy
// settings, limits and trusted proxies without dropping connections. A
// file that fails is refused with a log line naming the problem, and the
// running config stays. Backends added or removed through the admin API are
// an overlay: the file's list replaces them, and the log says what went.
func (s *lbServer) reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.cfg.Load()
	refuse := func(err error) error {
		s.logger.Error("reload refused, running config kept", "path", s.cfgPath, "err", err.Error())
		return err
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

	if keys := lbconfig.RestartNeeded(old, cfg); len(keys) > 0 {
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
	s.limiter.setLimit(cfg.Limits.MaxConns)
	for _, f := range s.public {
		f.refresh()
	}
	s.saveState()
	s.logger.Info("config reloaded", "path", s.cfgPath, "backends", len(cfg.Backends),
		"added", nonNil(added), "removed", nonNil(removed), "policy", cfg.Policy)
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
