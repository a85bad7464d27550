package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/jackc/pgx/v5/pgxpool"

	"outrigger/internal/app"
	"outrigger/internal/app/pgretry"
	"outrigger/internal/app/pgsession"
	"outrigger/internal/app/store"
	"outrigger/internal/logging"
)

// errUsage is a bad command line; main exits with status 2.
var errUsage = errors.New("usage: app [-version] (configured by environment variables: app -h lists them)")

// exitCode is 2 for configuration and usage errors, 1 for everything else.
func exitCode(err error) int {
	var ce *configError
	if errors.As(err, &ce) || errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

const (
	// readHeaderTimeout bounds how long a client may take to send its headers.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout is longer than lb's 60 s idle timeout to backends, so lb closes first.
	idleTimeout = 120 * time.Second
	// maxHeaderBytes bounds request headers, as lb's max_header_bytes default.
	maxHeaderBytes = 64 << 10
	// cleanupEvery is how often expired sessions and stale uploads are swept.
	cleanupEvery = 5 * time.Minute
	// staleUploadAge is how long an unfinished upload may make no progress before it is swept.
	staleUploadAge = time.Hour
	// retryFailedEvery is how often the deletion of failed uploads is retried.
	retryFailedEvery = 10 * time.Second
	// oldLoginFailure is the age past which failed logins are deleted (the
	// limit counts 15 minutes).
	oldLoginFailure = time.Hour
	// migrateTimeout bounds one attempt at the migrations; migrateRetryMax is
	// the longest wait between two attempts.
	migrateTimeout  = time.Minute
	migrateRetryMax = 5 * time.Second
	// backgroundBudget bounds each statement of the sweeps (retries included).
	backgroundBudget = time.Minute
	// lbPerTryTimeout is lb's default proxy.per_try_timeout: DB_RETRY_TIMEOUT
	// must stay below lb's, or lb answers 504 while the app still waits.
	lbPerTryTimeout = 5 * time.Second
)

// run is the whole program: it reads the environment through getenv, serves
// until ctx is cancelled (SIGTERM), then drains and shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // -h prints the usage on stdout below; a bad flag names itself on stderr
	showVersion := fs.Bool("version", false, "print the version and exit")
	if len(args) > 0 {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			return nil
		}
		return errUsage
	}
	if fs.NArg() == 1 && fs.Arg(0) == "help" {
		fmt.Fprint(stdout, usageText)
		return nil
	}
	if fs.NArg() > 0 {
		return errUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, version)
		return nil
	}

	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logger, err := logging.New(stdout, logging.Options{Format: cfg.LogFormat, NoColor: getenv("NO_COLOR") != ""})
	if err != nil {
		return &configError{Var: "LOG_FORMAT", Msg: err.Error()}
	}
	return serve(ctx, cfg, logger)
}

// serve runs the app with cfg until ctx is cancelled, then drains: /healthz
// says draining and answers carry Connection: close for SHUTDOWN_DELAY, then a
// graceful shutdown of up to SHUTDOWN_TIMEOUT.
func serve(ctx context.Context, cfg config, logger *slog.Logger) error {
	pgretry.ConfigurePool(cfg.Pool)
	pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg.Pool) // connects lazily
	if err != nil {
		return fmt.Errorf("database pool: %w", err)
	}
	defer pool.Close()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	addr := ln.Addr().String()
	if cfg.Instance == "" {
		cfg.Instance = defaultInstance(addr)
	}
	logger = logger.With("instance", cfg.Instance) // every line says which app server wrote it
	if cfg.DBRetryTimeout >= lbPerTryTimeout {
		logger.Warn("DB_RETRY_TIMEOUT is not below lb's default per_try_timeout: set lb's proxy.per_try_timeout above it, or lb answers 504 while the app still waits on the database",
			"db_retry_timeout", cfg.DBRetryTimeout.String(), "lb_default_per_try_timeout", lbPerTryTimeout.String())
	}
	db := pgretry.New(pool, pgretry.Options{Budget: cfg.DBRetryTimeout, Logger: logger})
	sess, err := pgsession.New(db, cfg.SessionKeys, pgsession.Options{MaxAge: cfg.SessionMaxAge, Secure: cfg.CookieSecure, Logger: logger})
	if err != nil {
		ln.Close()
		return &configError{Var: "SESSION_KEYS", Msg: err.Error()}
	}
	st := store.New(db)
	ready := &app.Readiness{}
	srv := newHTTPServer(app.NewServer(appConfig(cfg), logger, cfg.Resolver, st, sess, ready), logger)

	// Background work stops with ctx (SIGTERM), or when run returns.
	bgCtx, stopBG := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer func() { stopBG(); bg.Wait() }()
	bg.Go(func() {
		if !migrate(bgCtx, logger, pool, ready) {
			return
		}
		// The tables exist from here on.
		bg.Go(func() { sess.Cleanup(bgCtx, cleanupEvery) })
		sweep(bgCtx, logger, st)
	})

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("listening", "listener", "app", "addr", addr, "version", version, "db_retry_timeout", cfg.DBRetryTimeout.String())
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		logger.Warn("systemd notify failed", "err", err)
	}
	stopWatchdog := startWatchdog(ctx, cfg, ln.Addr(), logger)
	defer stopWatchdog()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	stopWatchdog()

	// Draining: /healthz answers draining and every response carries
	// Connection: close while lb notices; then a graceful shutdown.
	ready.SetDraining()
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	logger.Info("draining", "shutdown_delay", cfg.ShutdownDelay.String(), "shutdown_timeout", cfg.ShutdownTimeout.String())
	delay := time.NewTimer(cfg.ShutdownDelay)
	select {
	case <-delay.C:
	case err := <-serveErr:
		delay.Stop()
		return fmt.Errorf("serve on %s: %w", addr, err)
	}

	logger.Info("shutting down", "shutdown_timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("graceful shutdown within %v: %w", cfg.ShutdownTimeout, err)
	}
	logger.Info("stopped")
	return nil
}

// appConfig is the HTTP server's part of cfg: file transfers may hold at most
// half of the DB_MAX_CONNS pool at once.
func appConfig(cfg config) app.Config {
	return app.Config{
		Version:        version,
		Instance:       cfg.Instance,
		MaxUploadBytes: cfg.MaxUploadBytes,
		MaxTransfers:   int(cfg.DBMaxConns) / 2,
		DBRetryTimeout: cfg.DBRetryTimeout,
	}
}

// newHTTPServer is the app's http.Server around handler.
func newHTTPServer(handler http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// No ReadTimeout or WriteTimeout: uploads and downloads may be long and
		// slow; request bodies are bounded by size instead.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// migrate applies the schema migrations, retrying until they succeed (true)
// or ctx ends (false); until then /healthz answers degraded. PostgreSQL being
// down at start, or failing over in the middle, does not stop the app from
// starting: each attempt is one transaction (never half-applied) bounded by
// migrateTimeout, and failures are retried with a backoff capped at
// migrateRetryMax, with one log line each saying whether the failure looks
// transient (the database away) or not (a migration that cannot apply).
func migrate(ctx context.Context, logger *slog.Logger, pool *pgxpool.Pool, ready *app.Readiness) bool {
	const first = 250 * time.Millisecond
	wait := first
	for attempt := 1; ; attempt++ {
		mctx, cancel := context.WithTimeout(ctx, migrateTimeout)
		err := store.Migrate(mctx, pool)
		cancel()
		if err == nil {
			ready.SetMigrated()
			logger.Info("database migrated", "attempts", attempt)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		level := slog.LevelWarn
		transient := pgretry.Transient(err)
		if !transient {
			level = slog.LevelError
		}
		logger.Log(ctx, level, "database migration failed; will retry", "err", err,
			"attempt", attempt, "transient", transient, "retry_in", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(wait*2, migrateRetryMax)
	}
}

// sweep deletes, every cleanupEvery until ctx ends, unfinished uploads older
// than staleUploadAge and login failures too old to count any more, and every
// retryFailedEvery the failed uploads that could not be deleted when they
// failed (the database was away).
func sweep(ctx context.Context, logger *slog.Logger, st *store.Store) {
	ctx = pgretry.WithBudget(ctx, backgroundBudget) // renewed below, before each statement
	t := time.NewTicker(cleanupEvery)
	defer t.Stop()
	failed := time.NewTicker(retryFailedEvery)
	defer failed.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-failed.C:
			pgretry.Renew(ctx)
			n, left, err := st.DeleteFailedUploads(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				logger.Warn("failed uploads not deleted yet; will retry", "err", err, "left", left)
			case n > 0:
				logger.Info("failed uploads deleted", "files", n)
			}
			continue
		case <-t.C:
		}
		pgretry.Renew(ctx)
		n, err := st.SweepStaleUploads(ctx, staleUploadAge)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("stale upload sweep failed", "err", err)
		case n > 0:
			logger.Info("stale uploads swept", "files", n)
		}
		pgretry.Renew(ctx)
		if _, err := st.PruneLoginFailures(ctx, oldLoginFailure); err != nil && ctx.Err() == nil {
			logger.Warn("login failure pruning failed", "err", err)
		}
	}
}
