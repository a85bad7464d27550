// Package labfleet runs the highly available Outrigger deployment on a lab
// (internal/lab): a client host, two lb hosts each running `lb serve` and keepalived
// (deploy/keepalived's configuration, its definitions rendered with lab addresses) behind
// a virtual IP, app hosts app-1..N, and the database on hosts of its own. The end-to-end
// tests of host failures (internal/e2e) break its hosts under load from the client host.
//
// It builds nothing: it takes the paths of the lb and app binaries. It reuses
// internal/fleet for what is not about hosts: the certificate, the admin API client and
// the load generator (fleet.StartLoad, fleet.Result).
package labfleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"outrigger/internal/lab"
)

// Ports the fleet's processes listen on, on their hosts' addresses.
const (
	HTTPSPort = 443  // lb's listen, on every address (the virtual IP included)
	AdminPort = 9000 // lb's admin listener, on the lb host's 127.0.0.1
	AppPort   = 8080 // each app's APP_LISTEN, on its host's address
	dbPort    = 5432
)

// Options configure Start.
type Options struct {
	LB, App string // paths of the lb and app binaries (required)
	// LBs is 1 (a lone lb: its host address is the "virtual IP", no keepalived) or 2
	// (the default: a keepalived pair behind a virtual IP).
	LBs int
	// Apps is the number of app hosts; default 3.
	Apps int
	// Database is where the state lives; default SinglePostgres{}.
	Database Database
	// Env is extra environment for every app ("KEY=value"), after the fleet's own
	// (DB_RETRY_TIMEOUT=8s among them), so it can override them.
	Env []string
	// LBConfig overrides keys of the lb configuration the fleet writes: each key is a
	// top-level key of lb.yaml; a map value is merged into the fleet's map of that key
	// (e.g. {"proxy": map[string]any{"per_try_timeout": "3s"}}), any other value
	// replaces it. See LBConfigDefaults for what the fleet writes.
	LBConfig map[string]any
	// NoTrackProcess drops the keepalived configuration's track_process block (the
	// check alone then notices a dead lb).
	NoTrackProcess bool
	// StartTimeout bounds the start of each part; default 60s.
	StartTimeout time.Duration
}

// Fleet is a running highly available deployment on a lab.
type Fleet struct {
	Lab    *lab.Lab
	Client *lab.Host // where load and requests come from
	LBs    []*LB     // lb-a, lb-b
	Apps   []*App    // app-1..N
	// VIP is the virtual IP the lbs share (with one lb: its host's address).
	VIP netip.Addr
	// URL is https://VIP:443.
	URL string
	// HTTP is a client on the client host that trusts the fleet's certificate; no
	// overall timeout (give requests a context).
	HTTP *http.Client
	// DatabaseURL is what the apps have as DATABASE_URL.
	DatabaseURL string
	// CertPool trusts the fleet's certificate.
	CertPool *x509.CertPool

	opts     Options
	dir      string // shared files: certificate, token, scripts
	token    string
	certFile string
	keyFile  string
	scripts  string
}

// Start builds the fleet on l: the database, the app hosts, then the lb hosts (lb, then
// keepalived), and returns once exactly one lb holds the virtual IP and every lb's
// /readyz answers 200 with every app healthy. On error what was started stays on l,
// whose Close removes it.
func Start(ctx context.Context, l *lab.Lab, o Options) (*Fleet, error) {
	if o.LB == "" || o.App == "" {
		return nil, errors.New("labfleet: LB and App binaries are required")
	}
	if o.LBs == 0 {
		o.LBs = 2
	}
	if o.LBs != 1 && o.LBs != 2 {
		return nil, fmt.Errorf("labfleet: %d lbs: 1 or 2", o.LBs)
	}
	if o.Apps == 0 {
		o.Apps = 3
	}
	if o.Database == nil {
		o.Database = SinglePostgres{}
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	f := &Fleet{Lab: l, opts: o, dir: filepath.Join(l.Dir(), "fleet")}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, fmt.Errorf("labfleet: %w", err)
	}
	var err error
	if f.Client, err = l.AddHost(ctx, "client"); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()
	if f.DatabaseURL, err = o.Database.Start(sctx, l); err != nil {
		return nil, fmt.Errorf("labfleet: database: %w", err)
	}
	if err := f.startApps(ctx); err != nil {
		return nil, err
	}
	if err := f.startLBs(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// ForTest builds a lab (lab.ForTest: it skips the test when not root, saying why) and
// the fleet on it, failing the test on error; the lab's cleanup removes it all.
func ForTest(t testing.TB, o Options) *Fleet {
	t.Helper()
	need := []string{}
	if o.LBs != 1 {
		need = append(need, "keepalived")
	}
	l := lab.ForTest(t, lab.Options{Need: need})
	start := time.Now()
	f, err := Start(t.Context(), l, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("labfleet: up in %v: %d lbs behind %s, %d apps", time.Since(start).Round(time.Millisecond), len(f.LBs), f.VIP, len(f.Apps))
	t.Cleanup(f.HTTP.CloseIdleConnections)
	return f
}

// NewHTTPClient returns a new client on the client host trusting the fleet's
// certificate, with its own connection pool.
func (f *Fleet) NewHTTPClient() *http.Client {
	tr := f.Client.HTTPTransport()
	tr.TLSClientConfig = &tls.Config{RootCAs: f.CertPool}
	return &http.Client{Transport: tr}
}

// Holder returns the lb whose host holds the virtual IP on a live link; an error when
// none or both do.
func (f *Fleet) Holder() (*LB, error) {
	var held []*LB
	for _, lb := range f.LBs {
		ok, err := lb.Host.Holds(f.VIP)
		if err != nil {
			return nil, err
		}
		if ok {
			held = append(held, lb)
		}
	}
	if len(held) != 1 {
		return nil, fmt.Errorf("labfleet: %d lbs hold %s", len(held), f.VIP)
	}
	return held[0], nil
}

// WaitHolder waits up to limit until exactly one lb holds the virtual IP and returns it.
func (f *Fleet) WaitHolder(ctx context.Context, limit time.Duration) (*LB, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		lb, err := f.Holder()
		if err == nil {
			return lb, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("labfleet: waiting for one holder of %s: %w", f.VIP, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Other returns the lb of the pair that is not lb.
func (f *Fleet) Other(lb *LB) *LB {
	for _, o := range f.LBs {
		if o != lb {
			return o
		}
	}
	return nil
}

// Token is the admin token every lb shares.
func (f *Fleet) Token() string { return f.token }

// AppURLs are the apps' URLs as the lbs reach them.
func (f *Fleet) AppURLs() []string {
	var out []string
	for _, a := range f.Apps {
		out = append(out, a.URL)
	}
	return out
}

func hostPort(a netip.Addr, port int) string { return net.JoinHostPort(a.String(), strconv.Itoa(port)) }

// poll calls ok every 50 ms until it returns nil or ctx ends (then its last error).
func poll(ctx context.Context, what string, ok func() error) error {
	for {
		err := ok()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("labfleet: waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
