package deploy

import (
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lbconfig"
)

// TestLBConfigExample loads lb.yaml.example with lb's own parser and checks
// that it fits lb.service: the token is the unit's credential, state and ACME
// cache live in its StateDirectory, and the stop timeout covers shutdown_delay and
// drain_timeout.
func TestLBConfigExample(t *testing.T) {
	cfg, err := lbconfig.Load("lb.yaml.example")
	if err != nil {
		t.Fatalf("lb.yaml.example does not validate: %v", err)
	}
	u := parseUnit(t, "systemd/lb.service")

	cred, src, ok := strings.Cut(u.get("Service", "LoadCredential"), ":")
	if !ok {
		t.Fatalf("LoadCredential = %q, want NAME:PATH", u.get("Service", "LoadCredential"))
	}
	if want := "/run/credentials/lb.service/" + cred; cfg.Admin.TokenFile != want {
		t.Errorf("admin.token_file = %q, want the credential %q (from %s)", cfg.Admin.TokenFile, want, src)
	}
	if !lbconfig.IsLoopback(cfg.Admin.Listen) {
		t.Errorf("admin.listen = %q, want loopback in the example", cfg.Admin.Listen)
	}
	stateDir := "/var/lib/" + u.get("Service", "StateDirectory")
	if cfg.StateFile == "" || path.Dir(cfg.StateFile) != stateDir {
		t.Errorf("state_file = %q, want a file in %s (StateDirectory)", cfg.StateFile, stateDir)
	}
	if cfg.TLS == nil || cfg.TLS.ACME == nil {
		t.Fatal("the example has no tls.acme block")
	}
	if !strings.HasPrefix(cfg.TLS.ACME.CacheDir, stateDir+"/") {
		t.Errorf("tls.acme.cache_dir = %q, want it in %s (StateDirectory)", cfg.TLS.ACME.CacheDir, stateDir)
	}
	if stop := seconds(t, u.get("Service", "TimeoutStopSec")); stop < (cfg.ShutdownDelay + cfg.DrainTimeout + stopMargin).Seconds() {
		t.Errorf("TimeoutStopSec %vs is not %v above shutdown_delay %v + drain_timeout %v", stop, stopMargin, cfg.ShutdownDelay, cfg.DrainTimeout)
	}
	if len(cfg.Backends) < 2 {
		t.Errorf("the example has %d backend(s); a rollout needs at least 2", len(cfg.Backends))
	}
}

// TestAppEnvExample checks that app.env.example mentions every variable of
// DESIGN.md's app table, sets the required ones, and that its shutdown times
// fit app.service's TimeoutStopSec.
func TestAppEnvExample(t *testing.T) {
	data, err := os.ReadFile("app.env.example")
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]string{}
	mentioned := map[string]bool{}
	line := regexp.MustCompile(`^(#?)([A-Z_]+)=(.*)$`)
	for _, l := range strings.Split(string(data), "\n") {
		m := line.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		mentioned[m[2]] = true
		if m[1] == "" {
			set[m[2]] = m[3]
		}
	}
	for _, v := range []string{"DATABASE_URL", "APP_LISTEN", "SESSION_KEYS", "SESSION_MAX_AGE", "COOKIE_SECURE",
		"TRUSTED_PROXIES", "APP_INSTANCE", "MAX_UPLOAD_BYTES", "DB_MAX_CONNS", "DB_RETRY_TIMEOUT", "SHUTDOWN_DELAY", "SHUTDOWN_TIMEOUT", "LOG_FORMAT"} {
		if !mentioned[v] {
			t.Errorf("app.env.example does not mention %s", v)
		}
	}
	for _, v := range []string{"DATABASE_URL", "SESSION_KEYS", "TRUSTED_PROXIES"} {
		if set[v] == "" {
			t.Errorf("app.env.example does not set %s", v)
		}
	}
	if k := set["SESSION_KEYS"]; len(k) < 32 {
		t.Errorf("SESSION_KEYS example is %d characters, want >= 32", len(k))
	}
	u := parseUnit(t, "systemd/app.service")
	shutdown := 5*time.Second + 25*time.Second // DESIGN's SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT defaults
	if stop := seconds(t, u.get("Service", "TimeoutStopSec")); stop <= shutdown.Seconds() {
		t.Errorf("TimeoutStopSec %vs is not above SHUTDOWN_DELAY+SHUTDOWN_TIMEOUT %v", stop, shutdown)
	}
}

// TestLBConfigExampleSharedCache uncomments the example's lines for several
// lbs sharing certificates and checks that the result still validates and
// points the cache key at a credential of lb.service.
func TestLBConfigExampleSharedCache(t *testing.T) {
	data, err := os.ReadFile("lb.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	uncommented := 0
	for _, l := range strings.Split(string(data), "\n") {
		for _, key := range []string{"cache_database_url:", "cache_key_file:", "renew_before:"} {
			if p := "    # " + key; strings.HasPrefix(l, p) {
				l = "    " + strings.TrimPrefix(l, "    # ")
				uncommented++
			}
		}
		out = append(out, l)
	}
	if uncommented != 3 {
		t.Fatalf("uncommented %d of the 3 shared-cache lines (cache_database_url, cache_key_file, renew_before)", uncommented)
	}
	path := t.TempDir() + "/lb.yaml"
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := lbconfig.Load(path)
	if err != nil {
		t.Fatalf("the example with its shared-cache lines does not validate: %v", err)
	}
	a := cfg.TLS.ACME
	if a.CacheDatabaseURL == "" || a.RenewBefore <= 0 {
		t.Errorf("cache_database_url = %q, renew_before = %v: want both set", a.CacheDatabaseURL, a.RenewBefore)
	}
	if !strings.HasPrefix(a.CacheKeyFile, "/run/credentials/lb.service/") {
		t.Errorf("cache_key_file = %q, want a credential of lb.service", a.CacheKeyFile)
	}
	if a.RenewBefore > 720*time.Hour {
		t.Errorf("renew_before = %v: autocert caps it at 720h", a.RenewBefore)
	}
}

// TestLBConfigExampleIsSafeFirst checks that lb.yaml.example starts the way
// OPERATIONS.md says to: Let's Encrypt's staging directory and a short HSTS
// max-age, with the production values as commented lines that, swapped in,
// still validate.
func TestLBConfigExampleIsSafeFirst(t *testing.T) {
	cfg, err := lbconfig.Load("lb.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.TLS.ACME.DirectoryURL; got != "https://acme-staging-v02.api.letsencrypt.org/directory" {
		t.Errorf("directory_url = %q, want Let's Encrypt's staging directory first", got)
	}
	if age := maxAge(t, cfg.TLS.HSTS); age > 3600 {
		t.Errorf("hsts = %q: max-age %d, want a short one (at most an hour) to start with", cfg.TLS.HSTS, age)
	}
	data, err := os.ReadFile("lb.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	// Production: comment the active line out, uncomment the commented one below it.
	lines := strings.Split(string(data), "\n")
	swapped := 0
	for i := 0; i+1 < len(lines); i++ {
		for _, key := range []string{"directory_url:", "hsts:"} {
			active, commented := strings.TrimSpace(lines[i]), strings.TrimSpace(lines[i+1])
			if strings.HasPrefix(active, key) && strings.HasPrefix(commented, "# "+key) {
				indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " "))]
				lines[i], lines[i+1] = indent+"# "+active, indent+strings.TrimPrefix(commented, "# ")
				swapped++
			}
		}
	}
	if swapped != 2 {
		t.Fatalf("found %d of the 2 production lines (directory_url, hsts) commented under the active ones", swapped)
	}
	path := t.TempDir() + "/lb.yaml"
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	prod, err := lbconfig.Load(path)
	if err != nil {
		t.Fatalf("the example switched to production does not validate: %v", err)
	}
	if got := prod.TLS.ACME.DirectoryURL; got != lbconfig.DefaultACMEDirectory {
		t.Errorf("production directory_url = %q, want %q", got, lbconfig.DefaultACMEDirectory)
	}
	if age := maxAge(t, prod.TLS.HSTS); age < 180*86400 {
		t.Errorf("production hsts = %q, want a max-age of at least 180 days", prod.TLS.HSTS)
	}
}

// maxAge returns the max-age of an HSTS value.
func maxAge(t *testing.T, hsts string) int {
	t.Helper()
	m := regexp.MustCompile(`max-age=(\d+)`).FindStringSubmatch(hsts)
	if m == nil {
		t.Fatalf("hsts %q has no max-age", hsts)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return n
}
