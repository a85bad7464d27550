package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"outrigger/internal/admin"
	"outrigger/internal/balancer"
	"outrigger/internal/certs"
	"outrigger/internal/clientip"
	"outrigger/internal/frontend"
	"outrigger/internal/health"
	"outrigger/internal/lbconfig"
	"outrigger/internal/logging"
)

// serveHooks let tests drive serve in-process; the zero value is production.
type serveHooks struct {
	// reload, if set, replaces SIGHUP as the reload trigger.
	reload <-chan struct{}
	// listening is called once per listener with its bound address.
	listening func(listener, addr string)
	// ready is called with the running server once every listener is listening.
	ready func(*lbServer)
	// reloaded is called after each reload attempt with its outcome.
	reloaded func(err error)
	// signals, if set, replaces the SIGTERMs and SIGINTs after the first (which cancels
	// ctx): each value moves a stop on, ending shutdown_delay or the drain early.
	signals <-chan struct{}
}

// lbServer is the running `lb serve`: the composition root of the balancer,
// health checks, admin API, certificates and listeners.
type lbServer struct {
	cfgPath  string
	logger   *slog.Logger
	hooks    serveHooks
	fastPath bool // HTTP/1 on lb's own connection loop, HTTP/2 on its own server (LB_FAST_PATH=off: all on net/http)
	getenv   func(string) string
	pid      int // for WATCHDOG_PID

	started  time.Time
	reloadMu sync.Mutex // serialises reloads
	reloads  *reloadRecord
	phase    atomic.Int32 // an admin.Phase: starting, serving (public listeners started), stopping
	cfg      atomic.Pointer[lbconfig.Config]
	token    atomic.Pointer[string]
	resolver atomic.Pointer[clientip.Resolver]

	reg       *prometheus.Registry
	pool      *balancer.Pool
	proxy     *balancer.Proxy
	passive   *health.Passive
	checker   *health.Checker
	certs     *certs.Source   // nil without tls
	adminCert *certs.FileCert // nil for a plain admin listener
	state     *stateFile
	limiter   *frontend.ConnLimiter
	public    []*frontend.Listener // https/http, and http_listen
	admin     *frontend.Listener
}

// loadConfig reads and validates the config file; every problem is a usage error.
func loadConfig(path string) (*lbconfig.Config, error) {
	cfg, err := lbconfig.Load(path)
	if err != nil {
		return nil, &usageError{err: err}
	}
	return cfg, nil
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, hooks serveHooks) error {
	if hooks.signals == nil {
		more, stop := furtherSignals()
		defer stop()
		hooks.signals = more
	}
	fs := newFlagSet("serve", "", stdout, stderr)
	path := fs.String("config", "", "config file (YAML)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" || fs.NArg() > 0 {
		fs.Usage()
		return usagef("serve: -config FILE is required and takes no arguments")
	}
	format := getenv("LOG_FORMAT")
	if format == "" {
		format = "auto"
	}
	if !logging.ValidFormat(format) {
		return usagef("LOG_FORMAT=%q: want auto, text or json", format)
	}
	logger, err := logging.New(stdout, logging.Options{Format: format, NoColor: getenv("NO_COLOR") != ""})
	if err != nil {
		return &usageError{err: fmt.Errorf("logger: %w", err)}
	}
	fast := getenv("LB_FAST_PATH")
	if fast != "" && fast != "on" && fast != "off" {
		return usagef("LB_FAST_PATH=%q: want on or off", fast)
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	token, err := lbconfig.ReadToken(cfg.Admin.TokenFile)
	if err != nil {
		return &usageError{err: fmt.Errorf("admin.token_file: %w", err)}
	}
	s := &lbServer{cfgPath: *path, logger: logger, hooks: hooks, state: &stateFile{path: cfg.StateFile}, fastPath: fast != "off",
		getenv: getenv, pid: os.Getpid()}
	s.cfg.Store(cfg)
	s.token.Store(&token)
	if err := s.build(ctx, cfg); err != nil {
		return err
	}
	defer func() {
		if s.certs != nil {
			s.certs.Close()
		}
	}()
	return s.serve(ctx)
}

// build creates everything but the listeners.
func (s *lbServer) build(ctx context.Context, cfg *lbconfig.Config) error {
	s.reg = prometheus.NewRegistry()
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lb_build_info", Help: "Always 1; the version label is lb's build version.",
	}, []string{"version"})
	buildInfo.WithLabelValues(version).Set(1)
	for _, c := range []prometheus.Collector{buildInfo, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := s.reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	var err error

	s.started = time.Now()
	if s.reloads, err = newReloadRecord(s.reg, s.cfgPath, s.started); err != nil {
		return err
	}

	resolver, err := clientip.NewResolver(cfg.TrustedProxies)
	if err != nil {
		return &usageError{err: fmt.Errorf("trusted_proxies: %w", err)}
	}
	s.resolver.Store(resolver)

	s.pool, err = balancer.NewPool(balancer.PoolOptions{
		Registerer:    s.reg,
		Logger:        s.logger,
		DialTimeout:   cfg.Proxy.DialTimeout,
		PerTryTimeout: cfg.Proxy.PerTryTimeout,
	})
	if err != nil {
		return fmt.Errorf("balancer: %w", err)
	}
	if err := s.reg.Register(s.readyMetric()); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	states, err := s.state.load()
	if err != nil {
		// A damaged state file must not keep lb down: say so and start with the config's states.
		s.logger.Error("state file unreadable, starting with every backend active", "path", cfg.StateFile, "err", err.Error())
		states = map[string]bool{}
	}
	if _, _, err := s.pool.Reconcile(specs(cfg, states)); err != nil {
		return &usageError{err: fmt.Errorf("backends: %w", err)}
	}
	if d := draining(states); len(d) > 0 && cfg.StateFile != "" {
		s.logger.Info("drain states restored from the state file", "path", cfg.StateFile, "draining", d)
	}

	policy, err := balancer.NewPolicy(cfg.Policy)
	if err != nil {
		return &usageError{err: fmt.Errorf("policy: %w", err)}
	}
	s.passive = health.NewPassive(cfg.HealthCheck.Fall, s.pool, s.logger)
	s.proxy = balancer.NewProxy(s.pool, policy, proxyConfig(cfg, resolver), s.passive, s.logger)
	s.checker, err = health.NewChecker(healthConfig(cfg), s.pool, s.pool, nil, s.logger, s.reg)
	if err != nil {
		return fmt.Errorf("health checker: %w", err)
	}

	if cfg.TLS != nil {
		s.certs, err = certs.New(ctx, *cfg.TLS, s.logger, s.reg)
		if err != nil {
			err = fmt.Errorf("tls: %w", err)
			if cfg.TLS.ACME != nil {
				return err // e.g. the certificate database is down: worth a restart (exit 1)
			}
			return &usageError{err: err} // certificate files that do not load: fix the config
		}
	}
	if cfg.Admin.CertFile != "" {
		s.adminCert, err = certs.LoadFileCert(cfg.Admin.CertFile, cfg.Admin.KeyFile)
		if err != nil {
			return &usageError{err: fmt.Errorf("admin certificate: %w", err)}
		}
	}
	return nil
}

// specs turns the config's backends and the saved drain states into Reconcile specs.
func specs(cfg *lbconfig.Config, draining map[string]bool) []balancer.Spec {
	out := make([]balancer.Spec, 0, len(cfg.Backends))
	for _, b := range cfg.Backends {
		out = append(out, balancer.Spec{Name: b.Name, URL: b.URL, Draining: draining[b.Name]})
	}
	return out
}

func proxyConfig(cfg *lbconfig.Config, r *clientip.Resolver) balancer.ProxyConfig {
	p := cfg.Proxy
	return balancer.ProxyConfig{
		DialTimeout:           p.DialTimeout,
		PerTryTimeout:         p.PerTryTimeout,
		MaxRetries:            p.MaxRetries,
		RetryBudget:           p.RetryBudget,
		RetryBodyBytes:        p.RetryBodyBytes,
		MaxInFlightPerBackend: int64(p.MaxInFlightPerBackend),
		TrustedProxies:        r,
	}
}

func healthConfig(cfg *lbconfig.Config) health.Config {
	h := cfg.HealthCheck
	return health.Config{Path: h.Path, Interval: h.Interval, Timeout: h.Timeout, Rise: h.Rise, Fall: h.Fall}
}

// settings are the current client-side limits of the public listeners.
func (s *lbServer) settings() frontend.Settings {
	cfg := s.cfg.Load()
	l := cfg.Limits
	set := frontend.Settings{
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		BodyReadTimeout:   l.BodyReadTimeout,
		WriteTimeout:      l.WriteTimeout,
	}
	if cfg.TLS != nil {
		set.HSTS = cfg.TLS.HSTS
	}
	return set
}

// adminSettings are the admin listener's fixed limits.
func adminSettings() frontend.Settings {
	return frontend.Settings{MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		BodyReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second}
}

// clientIP resolves a request's client address with the current trusted proxies.
func (s *lbServer) clientIP(r *http.Request) netip.Addr { return s.resolver.Load().ClientIP(r) }

// saveState writes the state file (if configured) and logs a failure.
func (s *lbServer) saveState() {
	if err := s.state.save(s.pool); err != nil {
		s.logger.Error("state file not written", "path", s.state.path, "err", err.Error())
	}
}

// serve opens the listeners, runs until ctx is done, then shuts down gracefully.
func (s *lbServer) serve(ctx context.Context) error {
	cfg := s.cfg.Load()
	reload := s.hooks.reload
	if reload == nil {
		ch := make(chan struct{}, 1)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGHUP)
		defer signal.Stop(sig)
		go func() {
			for {
				select {
				case <-sig:
					select {
					case ch <- struct{}{}:
					default:
					}
				case <-ctx.Done():
					return
				}
			}
		}()
		reload = ch
	}

	if err := s.listen(cfg); err != nil {
		s.closeListeners()
		return err
	}
	healthCtx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		s.checker.Run(healthCtx)
	}()
	for _, f := range append([]*frontend.Listener{s.admin}, s.public...) {
		f.Start()
		s.logger.Info("listening", "listener", f.Name(), "addr", f.Addr().String(), "http1", f.HTTP1(), "http2", f.HTTP2())
		if s.hooks.listening != nil {
			s.hooks.listening(f.Name(), f.Addr().String())
		}
	}
	s.phase.Store(int32(admin.PhaseServing)) // /readyz may say ready from now on
	s.saveState()
	if s.hooks.ready != nil {
		s.hooks.ready(s)
	}
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		s.logger.Warn("systemd readiness not sent", "err", err.Error())
	} else if ok {
		s.logger.Debug("systemd notified: ready")
	}
	stopWatchdog := s.startWatchdog(ctx)

	for {
		select {
		case <-reload:
			_, err := s.reload(ctx, "signal")
			if s.hooks.reloaded != nil {
				s.hooks.reloaded(err)
			}
			continue
		case <-ctx.Done():
		}
		break
	}

	stopWatchdog()
	s.phase.Store(int32(admin.PhaseStopping)) // /readyz answers 503 from this instant
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	s.keepServing(s.hooks.signals)
	err := s.shutdown(s.hooks.signals)
	stopHealth()
	<-healthDone
	return err
}

// listen binds every listener; a bind failure is an error (exit 1).
func (s *lbServer) listen(cfg *lbconfig.Config) error {
	s.limiter = frontend.NewConnLimiter(cfg.Limits.MaxConns)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	opts := frontend.Options{Name: "http", Listener: ln, Limiter: s.limiter, Settings: s.settings,
		Logger: s.logger, Proxy: s.proxy, NetHTTPOnly: !s.fastPath, CloseAfterAnswer: s.closeAfterAnswer}
	if s.certs != nil {
		opts.Name, opts.TLS = "https", s.certs.TLSConfig()
	}
	s.public = append(s.public, frontend.New(opts))
	if cfg.HTTPListen != "" && s.certs != nil {
		hl, err := net.Listen("tcp", cfg.HTTPListen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", cfg.HTTPListen, err)
		}
		h := logging.Middleware(s.logger, s.clientIP)(s.certs.HTTPHandler(ln.Addr().String()))
		s.public = append(s.public, frontend.New(frontend.Options{Name: "http", Listener: hl, Limiter: s.limiter,
			Settings: s.settings, Logger: s.logger, Handler: h}))
	}
	al, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Admin.Listen, err)
	}
	adminOpts := frontend.Options{Name: "admin", Listener: al, Settings: adminSettings, Logger: s.logger, Handler: s.adminHandler()}
	if s.adminCert != nil {
		adminOpts.TLS = certs.ServerTLSConfig(s.adminCert.GetCertificate)
	}
	s.admin = frontend.New(adminOpts)
	return nil
}

// closeAfterAnswer is the public listener's CloseAfterAnswer: while /readyz does not answer
// ready (stopping, or no backend accepts connections), each answer closes its connection,
// so clients reconnect — once keepalived has moved the address, to the other lb — rather
// than keep a connection to an lb that is going away or cannot reach the apps (whose
// packets, after the move, the other lb hands back to this one: deploy/keepalived).
func (s *lbServer) closeAfterAnswer() bool {
	return admin.ReadinessOf(s.pool, admin.Phase(s.phase.Load())) != admin.Ready
}

// closeListeners closes sockets bound by a listen that failed part way.
func (s *lbServer) closeListeners() {
	for _, f := range s.public {
		_ = f.Shutdown(context.Background())
	}
	if s.admin != nil {
		_ = s.admin.Shutdown(context.Background())
	}
}
