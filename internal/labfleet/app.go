package labfleet

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"outrigger/internal/lab"
)

// An App is an app server on a host of its own.
type App struct {
	Name string
	Host *lab.Host
	Proc *lab.Proc // the current run
	URL  string    // http://ADDR:8080, as the lbs reach it
	Bin  string    // the binary of the current run
	env  []string
}

// appEnv is every app's environment but its own address and name.
func (f *Fleet) appEnv(keys []string) []string {
	var lbs []string
	for _, h := range f.Lab.Hosts() {
		if strings.HasPrefix(h.Name(), "lb-") {
			lbs = append(lbs, h.Addr().String()+"/32")
		}
	}
	env := []string{
		"DATABASE_URL=" + f.DatabaseURL,
		"SESSION_KEYS=" + strings.Join(keys, ","),
		"TRUSTED_PROXIES=" + strings.Join(lbs, ","),
		"COOKIE_SECURE=true",
		"LOG_FORMAT=json",
		"SHUTDOWN_DELAY=300ms",
		"SHUTDOWN_TIMEOUT=10s",
		// DESIGN.md: the highly available example, below per_try_timeout (10s).
		"DB_RETRY_TIMEOUT=8s",
	}
	return append(env, f.opts.Env...)
}

// startApps adds the app hosts, and the lb hosts too (so that TRUSTED_PROXIES can name
// them), then starts the apps and waits until each answers /healthz.
func (f *Fleet) startApps(ctx context.Context) error {
	for _, name := range lbNames[:f.opts.LBs] {
		if _, err := f.Lab.AddHost(ctx, name); err != nil {
			return err
		}
	}
	keys := []string{}
	for range 2 {
		k, err := randomHex(32)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	env := f.appEnv(keys)
	for i := range f.opts.Apps {
		name := "app-" + strconv.Itoa(i+1)
		h, err := f.Lab.AddHost(ctx, name)
		if err != nil {
			return err
		}
		tmp := filepath.Join(h.Dir(), "tmp")
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return fmt.Errorf("labfleet: %w", err)
		}
		a := &App{Name: name, Host: h, URL: "http://" + hostPort(h.Addr(), AppPort),
			env: append([]string{"TMPDIR=" + tmp, "APP_INSTANCE=" + name,
				"APP_LISTEN=" + hostPort(h.Addr(), AppPort)}, env...)}
		f.Apps = append(f.Apps, a)
		if err := a.start(ctx, f.opts.App); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.StartTimeout)
	defer cancel()
	for _, a := range f.Apps {
		if err := a.WaitHealthy(ctx, f.Client); err != nil {
			return err
		}
	}
	return nil
}

func (a *App) start(ctx context.Context, bin string) error {
	p, err := a.Host.Start(ctx, lab.ProcSpec{Name: "app", Argv: []string{bin}, Env: a.env})
	if err != nil {
		return err
	}
	a.Proc, a.Bin = p, bin
	return nil
}

// Restart stops the app (SIGTERM: its graceful stop), waits until it exited, and starts
// binary ("" for the same one) in its place; it does not wait for it to be healthy.
func (a *App) Restart(ctx context.Context, binary string) error {
	if binary == "" {
		binary = a.Bin
	}
	if a.Proc != nil {
		if err := a.Proc.Stop(ctx); err != nil {
			return fmt.Errorf("labfleet: stop %s: %w", a.Name, err)
		}
	}
	return a.start(ctx, binary)
}

// WaitHealthy waits until the app answers GET /healthz with 200, asked from host from.
func (a *App) WaitHealthy(ctx context.Context, from *lab.Host) error {
	c := from.HTTPClient(time.Second)
	defer c.CloseIdleConnections()
	return poll(ctx, a.Name+" healthy", func() error {
		resp, err := c.Get(a.URL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz: %s", resp.Status)
		}
		return nil
	})
}
