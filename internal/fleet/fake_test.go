package fleet

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"
)

// The fleet's own tests run this test binary as a stand-in for app (FLEET_FAKE=app)
// and lb (first argument "serve"): small programs that speak the parts of DESIGN's
// interfaces the fleet relies on (env, config file, "listening" and "request" log
// lines, /healthz, the admin API), so the process machinery is tested on its own.

// fakeMain runs a fake program if this process is one, and reports whether it was.
func fakeMain() (bool, int) {
	switch {
	case os.Getenv("FLEET_FAKE") == "app":
		return true, exitCode(fakeApp())
	case len(os.Args) > 2 && os.Args[1] == "serve" && os.Args[2] == "-config":
		return true, exitCode(fakeLB(os.Args[3]))
	}
	return false, 0
}

func exitCode(err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake:", err)
		return 1
	}
	return 0
}

func fakeApp() error {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if dsn := os.Getenv("DATABASE_URL"); dsn != "none" {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return fmt.Errorf("connect %s: %w", dsn, err)
		}
		if err := conn.Ping(ctx); err != nil {
			return err
		}
		conn.Close(ctx)
	}
	instance := os.Getenv("APP_INSTANCE")
	version := strings.TrimPrefix(filepath.Base(os.Args[0]), "app-") // symlinks app-v1, app-v2
	ln, err := net.Listen("tcp", os.Getenv("APP_LISTEN"))
	if err != nil {
		return err
	}
	log.Info("listening", "addr", ln.Addr().String(), "listener", "app")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": version, "instance": instance})
	})
	mux.HandleFunc("GET /api/me", func(w http.ResponseWriter, r *http.Request) {
		ip := r.Header.Get("X-Forwarded-For")
		if i := strings.LastIndexByte(ip, ','); i >= 0 {
			ip = strings.TrimSpace(ip[i+1:])
		}
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", 200, "request_id", r.Header.Get("X-Request-ID"), "client_ip", ip)
		w.Header().Set("X-Instance", instance)
		_ = json.NewEncoder(w).Encode(map[string]string{"username": "fake", "instance": instance, "version": version})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type fakeBackend struct {
	lbBackend
	proxy   *httputil.ReverseProxy
	healthy atomic.Bool
	mu      sync.Mutex
	version string
}

func fakeLB(config string) error {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	raw, err := os.ReadFile(config)
	if err != nil {
		return err
	}
	var cfg lbFile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	st, err := os.Stat(cfg.Admin.TokenFile)
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("token file %s is readable by others", cfg.Admin.TokenFile)
	}
	tok, err := os.ReadFile(cfg.Admin.TokenFile)
	if err != nil {
		return err
	}
	token := strings.TrimSpace(string(tok))
	interval, err := time.ParseDuration(cfg.HealthCheck.Interval)
	if err != nil {
		return err
	}
	var backends []*fakeBackend
	for _, b := range cfg.Backends {
		u, err := url.Parse(b.URL)
		if err != nil {
			return err
		}
		fb := &fakeBackend{lbBackend: b}
		fb.proxy = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(u)
				pr.SetXForwarded()
			},
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) { panic(http.ErrAbortHandler) },
		}
		backends = append(backends, fb)
	}
	client := &http.Client{Timeout: time.Second}
	go func() {
		for ctx.Err() == nil {
			for _, b := range backends {
				resp, err := client.Get(b.URL + "/healthz")
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					var h struct{ Version string }
					_ = json.NewDecoder(resp.Body).Decode(&h)
					resp.Body.Close()
					b.mu.Lock()
					b.version = h.Version
					b.mu.Unlock()
				}
				b.healthy.Store(ok)
			}
			select {
			case <-time.After(interval):
			case <-ctx.Done():
			}
		}
	}()
	var next atomic.Uint64
	public := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range len(backends) {
			b := backends[next.Add(1)%uint64(len(backends))]
			if !b.healthy.Load() {
				continue
			}
			log.Info("request", "method", r.Method, "path", r.URL.Path, "request_id", r.Header.Get("X-Request-ID"), "client_ip", strings.Split(r.RemoteAddr, ":")[0], "backend", b.Name)
			b.proxy.ServeHTTP(w, r)
			return
		}
		http.Error(w, `{"error":"no backend"}`, http.StatusServiceUnavailable)
	})
	admin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		var out []Backend
		for _, b := range backends {
			b.mu.Lock()
			out = append(out, Backend{Name: b.Name, URL: b.URL, State: "active", Healthy: b.healthy.Load(), Version: b.version})
			b.mu.Unlock()
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	pln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	aln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return err
	}
	log.Info("listening", "addr", pln.Addr().String(), "listener", "https")
	log.Info("listening", "addr", aln.Addr().String(), "listener", "admin")
	psrv := &http.Server{Handler: public, ReadHeaderTimeout: 5 * time.Second}
	asrv := &http.Server{Handler: admin, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = asrv.Serve(aln) }()
	go func() {
		<-ctx.Done()
		_ = asrv.Close()
		_ = psrv.Close()
	}()
	if err := psrv.ServeTLS(pln, cfg.TLS.CertFile, cfg.TLS.KeyFile); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
