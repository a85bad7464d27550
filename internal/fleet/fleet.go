// Package fleet runs a local Outrigger deployment as real processes: a PostgreSQL
// server, N app servers and one lb in front of them, each with its own captured log.
// `make demo` and the end-to-end tests use it. It builds nothing: it takes the paths
// of the app and lb binaries.
package fleet

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"outrigger/internal/pgtest"
)

// Options configure Start.
type Options struct {
	AppBinary string // path of the app binary (required)
	LBBinary  string // path of the lb binary (required)
	// AppVersions names other app binaries (e.g. "v2" -> path) that RestartWith and
	// the control socket (RestartCommand) may switch an app server to.
	AppVersions map[string]string
	Apps        int // number of app servers; default 3

	// DatabaseURL is the PostgreSQL the apps use as is. Empty: the fleet starts a
	// throwaway cluster (pgtest.StartCluster) and removes it on Close.
	DatabaseURL string
	// Dir holds configs, certificate, token, state file, logs and the control socket.
	// Empty: a new temporary directory, removed by Close.
	Dir string

	LB LBOptions
	// AppEnv is extra environment for every app server ("KEY=value"), after the
	// fleet's own (so it can override them).
	AppEnv []string
	// ShutdownDelay is the apps' SHUTDOWN_DELAY; default 300ms.
	ShutdownDelay time.Duration
	// StartTimeout bounds the start of each process; default 30s.
	StartTimeout time.Duration
}

// Fleet is a running deployment. Its methods are safe for concurrent use.
type Fleet struct {
	opts      Options
	dir       string
	ownDir    bool
	cluster   *pgtest.Cluster
	dbURL     string
	apps      []*Proc
	appPorts  []int
	lb        *Proc
	certPool  *x509.CertPool
	certFile  string
	tokenFile string
	token     string
	config    string
	url       string
	adminURL  string
	control   *controlServer
}

// Start starts PostgreSQL (unless opts.DatabaseURL), the app servers and lb, and
// returns once lb listens and every backend is healthy in lb's admin API. On error
// everything started so far is stopped again.
func Start(ctx context.Context, opts Options) (_ *Fleet, err error) {
	if opts.AppBinary == "" || opts.LBBinary == "" {
		return nil, errors.New("fleet: AppBinary and LBBinary are required")
	}
	if opts.Apps == 0 {
		opts.Apps = 3
	}
	if opts.ShutdownDelay == 0 {
		opts.ShutdownDelay = 300 * time.Millisecond
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	opts.LB.defaults()
	f := &Fleet{opts: opts, dir: opts.Dir}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.Close())
		}
	}()
	if f.dir == "" {
		if f.dir, err = os.MkdirTemp("", "fleet-"); err != nil {
			return nil, fmt.Errorf("fleet dir: %w", err)
		}
		f.ownDir = true
	}
	if err := os.Chmod(f.dir, 0o700); err != nil {
		return nil, fmt.Errorf("fleet dir: %w", err)
	}
	if err := f.startDatabase(ctx); err != nil {
		return nil, err
	}
	if err := f.startApps(ctx); err != nil {
		return nil, err
	}
	if err := f.startLB(ctx); err != nil {
		return nil, err
	}
	if f.control, err = startControl(f); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	if err := f.WaitHealthy(wctx, f.AppNames()...); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *Fleet) startDatabase(ctx context.Context) error {
	if f.opts.DatabaseURL != "" {
		f.dbURL = f.opts.DatabaseURL
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.StartTimeout)
	defer cancel()
	c, err := pgtest.StartCluster(ctx, pgtest.ClusterOptions{})
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	f.cluster = c
	f.dbURL = c.DSN("postgres")
	return nil
}

func (f *Fleet) startApps(ctx context.Context) error {
	var keys []string
	for range 2 {
		k, err := randomHex(32)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	for i := range f.opts.Apps {
		name := "app-" + strconv.Itoa(i+1)
		port, err := freePort()
		if err != nil {
			return err
		}
		dir := filepath.Join(f.dir, name)
		if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
			return fmt.Errorf("dir of %s: %w", name, err)
		}
		env := append(baseEnv(),
			"TMPDIR="+filepath.Join(dir, "tmp"),
			"DATABASE_URL="+f.dbURL,
			"APP_LISTEN=127.0.0.1:"+strconv.Itoa(port),
			"SESSION_KEYS="+strings.Join(keys, ","),
			"TRUSTED_PROXIES=127.0.0.1/32",
			"APP_INSTANCE="+name,
			"COOKIE_SECURE=true",
			"LOG_FORMAT=json",
			"SHUTDOWN_DELAY="+f.opts.ShutdownDelay.String(),
			"SHUTDOWN_TIMEOUT=10s",
		)
		env = append(env, f.opts.AppEnv...)
		p, err := newProc(name, dir, filepath.Join(f.dir, name+".log"), f.opts.AppBinary, nil, env)
		if err != nil {
			return err
		}
		f.apps = append(f.apps, p)
		f.appPorts = append(f.appPorts, port)
		if err := p.start(""); err != nil {
			return err
		}
	}
	// The apps start (and migrate, under their advisory lock) in parallel.
	ctx, cancel := context.WithTimeout(ctx, f.opts.StartTimeout)
	defer cancel()
	for _, p := range f.apps {
		if err := p.waitListening(ctx, "app"); err != nil {
			return err
		}
	}
	return nil
}

func (f *Fleet) startLB(ctx context.Context) error {
	certFile, keyFile, pool, err := selfSigned(f.dir, time.Now())
	if err != nil {
		return err
	}
	f.certPool, f.certFile = pool, certFile
	if f.token, err = randomHex(24); err != nil {
		return err
	}
	f.tokenFile = filepath.Join(f.dir, "admin-token")
	if err := os.WriteFile(f.tokenFile, []byte(f.token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	var backends []lbBackend
	for i, p := range f.apps {
		backends = append(backends, lbBackend{Name: p.Name(), URL: "http://127.0.0.1:" + strconv.Itoa(f.appPorts[i])})
	}
	cfg, err := lbConfigYAML(f.opts.LB, certFile, keyFile, f.tokenFile, filepath.Join(f.dir, "lb-state.json"), backends)
	if err != nil {
		return err
	}
	f.config = filepath.Join(f.dir, "lb.yaml")
	if err := os.WriteFile(f.config, cfg, 0o600); err != nil {
		return fmt.Errorf("write lb config: %w", err)
	}
	f.lb, err = newProc("lb", f.dir, filepath.Join(f.dir, "lb.log"), f.opts.LBBinary,
		[]string{"serve", "-config", f.config}, append(baseEnv(), "LOG_FORMAT=json"))
	if err != nil {
		return err
	}
	if err := f.lb.start(""); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.StartTimeout)
	defer cancel()
	if err := f.lb.waitListening(ctx, "https", "admin"); err != nil {
		return err
	}
	f.url = "https://" + f.lb.Addr("https")
	f.adminURL = "http://" + f.lb.Addr("admin")
	return nil
}

// URL is lb's public HTTPS URL, e.g. https://127.0.0.1:41234.
func (f *Fleet) URL() string { return f.url }

// AdminURL is lb's admin API URL, e.g. http://127.0.0.1:41235.
func (f *Fleet) AdminURL() string { return f.adminURL }

// TokenFile is the path of the admin token file (mode 0600).
func (f *Fleet) TokenFile() string { return f.tokenFile }

// ConfigFile is the path of the generated lb config.
func (f *Fleet) ConfigFile() string { return f.config }

// CertFile is the path of lb's self-signed certificate (PEM), to trust it elsewhere.
func (f *Fleet) CertFile() string { return f.certFile }

// Dir is the fleet's working directory.
func (f *Fleet) Dir() string { return f.dir }

// DatabaseURL is the PostgreSQL connection string the apps use.
func (f *Fleet) DatabaseURL() string { return f.dbURL }

// Cluster is the throwaway PostgreSQL server, nil when Options.DatabaseURL was given.
func (f *Fleet) Cluster() *pgtest.Cluster { return f.cluster }

// LB is the lb process.
func (f *Fleet) LB() *Proc { return f.lb }

// Apps are the app server processes; Apps()[i] is named app-(i+1) in lb's config.
func (f *Fleet) Apps() []*Proc { return f.apps }

// App is app server i (0-based).
func (f *Fleet) App(i int) *Proc { return f.apps[i] }

// AppNames are the apps' backend names in lb's config, in order.
func (f *Fleet) AppNames() []string {
	var names []string
	for _, p := range f.apps {
		names = append(names, p.Name())
	}
	return names
}

// AppURL is app server i's own address (bypassing lb), e.g. http://127.0.0.1:40001.
func (f *Fleet) AppURL(i int) string { return "http://127.0.0.1:" + strconv.Itoa(f.appPorts[i]) }

// AppIndex returns the index of the app named name, or -1.
func (f *Fleet) AppIndex(name string) int {
	for i, p := range f.apps {
		if p.Name() == name {
			return i
		}
	}
	return -1
}

// ControlSocket is the unix socket through which RestartCommand restarts app servers
// (used as the CMD of `lb rollout`).
func (f *Fleet) ControlSocket() string { return f.control.path }

// Kill sends SIGKILL to app server i and waits until it is gone.
func (f *Fleet) Kill(i int) error {
	p := f.apps[i]
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}

// Stop freezes app server i with SIGSTOP and returns once the kernel reports it stopped.
func (f *Fleet) Stop(i int) error {
	p := f.apps[i]
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.waitState(ctx, func(s byte) bool { return s == 'T' })
}

// Cont resumes app server i with SIGCONT.
func (f *Fleet) Cont(i int) error {
	p := f.apps[i]
	if err := p.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.waitState(ctx, func(s byte) bool { return s != 'T' })
}

// Term sends SIGTERM to app server i; see Proc.Wait to wait for its exit.
func (f *Fleet) Term(i int) error { return f.apps[i].Signal(syscall.SIGTERM) }

// Restart starts app server i again with the same binary and address (after
// stopping it with SIGTERM if it still runs) and returns once it listens.
func (f *Fleet) Restart(ctx context.Context, i int) error { return f.RestartWith(ctx, i, "") }

// RestartWith is Restart with another binary ("" keeps the current one).
func (f *Fleet) RestartWith(ctx context.Context, i int, binary string) error {
	p := f.apps[i]
	if p.Running() {
		sctx, cancel := context.WithTimeout(ctx, f.opts.ShutdownDelay+15*time.Second)
		err := p.stop(sctx)
		cancel()
		if err != nil {
			return fmt.Errorf("restart %s: stop: %w", p.Name(), err)
		}
	}
	if err := p.start(binary); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.StartTimeout)
	defer cancel()
	if err := p.waitListening(ctx, "app"); err != nil {
		return err
	}
	if got, want := p.Addr("app"), "127.0.0.1:"+strconv.Itoa(f.appPorts[i]); got != want {
		return fmt.Errorf("restart %s: listens on %s, want %s", p.Name(), got, want)
	}
	return nil
}

// WaitHealthy waits until every named backend is active and healthy in lb's admin API.
func (f *Fleet) WaitHealthy(ctx context.Context, names ...string) error {
	return f.Admin().WaitFor(ctx, func(bs []Backend) bool {
		for _, n := range names {
			b, ok := findBackend(bs, n)
			if !ok || !b.Healthy || b.State != "active" {
				return false
			}
		}
		return true
	})
}

// Close stops lb and the app servers (SIGTERM, then SIGKILL after a bound), stops
// PostgreSQL if the fleet started it, and removes the directory the fleet created.
func (f *Fleet) Close() error {
	var errs []error
	if f.control != nil {
		errs = append(errs, f.control.close())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	procs := f.apps
	if f.lb != nil {
		procs = append([]*Proc{f.lb}, procs...)
	}
	stopped := make(chan error, len(procs))
	for _, p := range procs {
		go func() {
			err := p.stop(ctx)
			var ee interface{ ExitCode() int }
			if errors.As(err, &ee) {
				err = nil // a process killed earlier by a test, or exiting non-zero on SIGTERM, is not a Close error
			}
			stopped <- err
		}()
	}
	for range procs {
		errs = append(errs, <-stopped)
	}
	for _, p := range procs {
		errs = append(errs, p.log.close())
	}
	if f.cluster != nil {
		errs = append(errs, f.cluster.Close())
	}
	if f.ownDir {
		errs = append(errs, os.RemoveAll(f.dir))
	}
	return errors.Join(errs...)
}

// DumpLogs writes the last n lines of every process's log to w.
func (f *Fleet) DumpLogs(w io.Writer, n int) {
	procs := append([]*Proc{}, f.apps...)
	if f.lb != nil {
		procs = append(procs, f.lb)
	}
	for _, p := range procs {
		fmt.Fprintf(w, "=== %s (%s), last %d lines\n", p.Name(), p.log.Path(), n)
		for _, l := range p.log.Tail(n) {
			fmt.Fprintf(w, "%s: %s\n", p.Name(), l)
		}
	}
}

// Lines returns every line logged so far by lb and the apps.
func (f *Fleet) Lines() ([]Line, error) {
	var all []Line
	var errs []error
	for _, p := range append([]*Proc{f.lb}, f.apps...) {
		ls, err := p.log.Lines()
		all = append(all, ls...)
		errs = append(errs, err)
	}
	return all, errors.Join(errs...)
}

// RequestLines returns the "request" log lines of lb and the apps, by request_id,
// for the given ids (all ids when none are given).
func (f *Fleet) RequestLines(ids ...string) (map[string][]Line, error) {
	all, err := f.Lines()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string][]Line{}
	for _, l := range all {
		if l.Msg() != "request" {
			continue
		}
		id := l.Str("request_id")
		if len(ids) == 0 || want[id] {
			out[id] = append(out[id], l)
		}
	}
	return out, err
}
