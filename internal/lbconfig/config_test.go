package lbconfig

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const minimal = "admin:\n  token_file: /etc/lb/admin-token\n"

func TestDefaults(t *testing.T) {
	got, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Default()
	want.Admin.TokenFile = "/etc/lb/admin-token"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"listen", got.Listen, ":443"},
		{"http_listen", got.HTTPListen, ""},
		{"tls", got.TLS, (*TLS)(nil)},
		{"admin.listen", got.Admin.Listen, "127.0.0.1:9000"},
		{"state_file", got.StateFile, ""},
		{"trusted_proxies", len(got.TrustedProxies), 0},
		{"policy", got.Policy, "least_conn"},
		{"health_check.path", got.HealthCheck.Path, "/healthz"},
		{"health_check.interval", got.HealthCheck.Interval, 2 * time.Second},
		{"health_check.timeout", got.HealthCheck.Timeout, time.Second},
		{"health_check.rise", got.HealthCheck.Rise, 2},
		{"health_check.fall", got.HealthCheck.Fall, 2},
		{"proxy.dial_timeout", got.Proxy.DialTimeout, 2 * time.Second},
		{"proxy.per_try_timeout", got.Proxy.PerTryTimeout, 5 * time.Second},
		{"proxy.max_retries", got.Proxy.MaxRetries, 2},
		{"proxy.retry_budget", got.Proxy.RetryBudget, 0.2},
		{"proxy.retry_body_bytes", got.Proxy.RetryBodyBytes, int64(65536)},
		{"proxy.max_in_flight_per_backend", got.Proxy.MaxInFlightPerBackend, 0},
		{"limits.max_conns", got.Limits.MaxConns, 10000},
		{"limits.max_header_bytes", got.Limits.MaxHeaderBytes, 65536},
		{"limits.read_header_timeout", got.Limits.ReadHeaderTimeout, 10 * time.Second},
		{"limits.idle_timeout", got.Limits.IdleTimeout, 120 * time.Second},
		{"shutdown_delay", got.ShutdownDelay, time.Duration(0)},
		{"limits.body_read_timeout", got.Limits.BodyReadTimeout, 60 * time.Second},
		{"limits.write_timeout", got.Limits.WriteTimeout, 60 * time.Second},
		{"drain_timeout", got.DrainTimeout, 30 * time.Second},
		{"backends", len(got.Backends), 0},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestACMEDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal + "tls:\n  acme:\n    domains: [example.com]\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	a := cfg.TLS.ACME
	if a.DirectoryURL != DefaultACMEDirectory {
		t.Errorf("directory_url: got %q, want %q", a.DirectoryURL, DefaultACMEDirectory)
	}
	if a.CacheDir != "/var/lib/lb/acme" {
		t.Errorf("cache_dir: got %q, want /var/lib/lb/acme", a.CacheDir)
	}
	if a.CacheDatabaseURL != "" || a.CAFile != "" || a.Email != "" || cfg.TLS.HSTS != "" {
		t.Errorf("got non-empty optional fields: %+v %+v", a, cfg.TLS)
	}
}

const full = `
listen: "127.0.0.1:8443"
http_listen: "127.0.0.1:8080"
tls:
  acme:
    domains: [example.com, www.example.com]
    email: ops@example.com
    directory_url: https://acme-staging-v02.api.letsencrypt.org/directory
    cache_dir: /tmp/acme
    cache_database_url: postgres://lb@db:5432/lb
    cache_key_file: /etc/lb/cache-key
    ca_file: /etc/lb/ca.pem
    renew_before: 720h
  hsts: "max-age=31536000; includeSubDomains"
admin:
  listen: 10.0.0.1:9000
  token_file: /etc/lb/admin-token
  cert_file: /etc/lb/admin.pem
  key_file: /etc/lb/admin-key.pem
state_file: /var/lib/lb/state.json
trusted_proxies: [10.0.0.0/8, 192.0.2.1, "2001:db8::/32"]
policy: p2c
health_check:
  path: /ready
  interval: 500ms
  timeout: 250ms
  rise: 3
  fall: 4
proxy:
  dial_timeout: 1s
  per_try_timeout: 3s
  max_retries: 1
  retry_budget: 0.5
  retry_body_bytes: 1024
  max_in_flight_per_backend: 100
limits:
  max_conns: 50
  max_header_bytes: 8192
  read_header_timeout: 5s
  body_read_timeout: 20s
  write_timeout: 30s
  idle_timeout: 1m
shutdown_delay: 4s
drain_timeout: 10s
backends:
  - name: app-1
    url: http://10.0.0.11:8080
  - name: app.2_b
    url: https://[2001:db8::1]:8443/
`

func TestFullFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lb.yaml")
	if err := os.WriteFile(path, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Config{
		Listen:     "127.0.0.1:8443",
		HTTPListen: "127.0.0.1:8080",
		TLS: &TLS{
			ACME: &ACME{
				Domains:          []string{"example.com", "www.example.com"},
				Email:            "ops@example.com",
				DirectoryURL:     "https://acme-staging-v02.api.letsencrypt.org/directory",
				CacheDir:         "/tmp/acme",
				CacheDatabaseURL: "postgres://lb@db:5432/lb",
				CacheKeyFile:     "/etc/lb/cache-key",
				CAFile:           "/etc/lb/ca.pem",
				RenewBefore:      720 * time.Hour,
			},
			HSTS: "max-age=31536000; includeSubDomains",
		},
		Admin: Admin{Listen: "10.0.0.1:9000", TokenFile: "/etc/lb/admin-token",
			CertFile: "/etc/lb/admin.pem", KeyFile: "/etc/lb/admin-key.pem"},
		StateFile:      "/var/lib/lb/state.json",
		TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"},
		Policy:         "p2c",
		HealthCheck:    HealthCheck{Path: "/ready", Interval: 500 * time.Millisecond, Timeout: 250 * time.Millisecond, Rise: 3, Fall: 4},
		Proxy: Proxy{DialTimeout: time.Second, PerTryTimeout: 3 * time.Second, MaxRetries: 1,
			RetryBudget: 0.5, RetryBodyBytes: 1024, MaxInFlightPerBackend: 100},
		Limits: Limits{MaxConns: 50, MaxHeaderBytes: 8192, ReadHeaderTimeout: 5 * time.Second,
			BodyReadTimeout: 20 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute},
		ShutdownDelay: 4 * time.Second,
		DrainTimeout:  10 * time.Second,
		Backends: []Backend{
			{Name: "app-1", URL: "http://10.0.0.11:8080"},
			{Name: "app.2_b", URL: "https://[2001:db8::1]:8443/"},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestFileCertsAndLoopbackAdmin(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:9000", "127.1.2.3:0", "[::1]:9000", "localhost:9000"} {
		y := "tls:\n  cert_file: c.pem\n  key_file: k.pem\nadmin:\n  listen: \"" + listen + "\"\n  token_file: t\n"
		if _, err := Parse([]byte(y)); err != nil {
			t.Errorf("admin.listen %s: %v", listen, err)
		}
	}
}

// TestValidationErrors checks each problem yields exactly one error with its key path.
func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // the single expected error, "path: message" prefix
	}{
		{"bad listen", "listen: nope\n" + minimal, `listen: "nope" is not host:port`},
		{"bad listen port", "listen: \":99999\"\n" + minimal, `listen: ":99999" has a bad port`},
		{"empty listen", "listen: \"\"\n" + minimal, "listen: must not be empty"},
		{"http_listen without tls", "http_listen: \":80\"\n" + minimal, "http_listen: needs tls"},
		{"bad http_listen", "http_listen: x\ntls: {cert_file: c, key_file: k}\n" + minimal, `http_listen: "x" is not host:port`},
		{"tls both", "tls:\n  cert_file: c\n  key_file: k\n  acme: {domains: [a.test]}\n" + minimal, "tls: set either cert_file+key_file or acme, not both"},
		{"tls neither", "tls:\n  hsts: max-age=1\n" + minimal, "tls: set either cert_file+key_file or acme"},
		{"tls cert only", "tls:\n  cert_file: c\n" + minimal, "tls.key_file: required with cert_file"},
		{"tls key only", "tls:\n  key_file: k\n" + minimal, "tls.cert_file: required with key_file"},
		{"bad hsts", "tls:\n  cert_file: c\n  key_file: k\n  hsts: includeSubDomains\n" + minimal, `tls.hsts: "includeSubDomains" has no max-age`},
		{"acme no domains", "tls:\n  acme: {email: a@b.c}\n" + minimal, "tls.acme.domains: at least one domain is required"},
		{"acme bad domain", "tls:\n  acme: {domains: [a.test, localhost]}\n" + minimal, `tls.acme.domains[1]: "localhost" is not`},
		{"acme wildcard", "tls:\n  acme: {domains: [\"*.a.test\"]}\n" + minimal, `tls.acme.domains[0]: "*.a.test" is not`},
		{"acme upper case", "tls:\n  acme: {domains: [A.test]}\n" + minimal, `tls.acme.domains[0]: "A.test" is not`},
		{"acme ip", "tls:\n  acme: {domains: [10.0.0.1]}\n" + minimal, `tls.acme.domains[0]: "10.0.0.1" is an IP address`},
		{"acme dup domain", "tls:\n  acme: {domains: [a.test, a.test]}\n" + minimal, `tls.acme.domains[1]: duplicate domain "a.test"`},
		{"acme email", "tls:\n  acme: {domains: [a.test], email: ops}\n" + minimal, `tls.acme.email: "ops" is not an email address`},
		{"acme directory http", "tls:\n  acme: {domains: [a.test], directory_url: \"http://ca.test/dir\"}\n" + minimal, `tls.acme.directory_url: "http://ca.test/dir" must be an https URL`},
		{"acme db without key", "tls:\n  acme: {domains: [a.test], cache_database_url: \"postgres://x@y/z\"}\n" + minimal, "tls.acme.cache_key_file: required with cache_database_url"},
		{"acme db not postgres", "tls:\n  acme: {domains: [a.test], cache_database_url: \"mysql://x\", cache_key_file: k}\n" + minimal, "tls.acme.cache_database_url: must be a postgres:// URL"},
		{"acme key without db", "tls:\n  acme: {domains: [a.test], cache_key_file: k}\n" + minimal, "tls.acme.cache_key_file: only used with cache_database_url"},
		{"acme renew negative", "tls:\n  acme: {domains: [a.test], renew_before: -1h}\n" + minimal, "tls.acme.renew_before: must be >= 0"},
		{"admin listen empty", "admin:\n  listen: \"\"\n  token_file: t\n", "admin.listen: required"},
		{"admin listen bad", "admin:\n  listen: \"9000\"\n  token_file: t\n", `admin.listen: "9000" is not host:port`},
		{"admin no token", "admin:\n  listen: 127.0.0.1:9000\n", "admin.token_file: required"},
		{"admin public no tls", "admin:\n  listen: 10.0.0.1:9000\n  token_file: t\n", `admin.listen: "10.0.0.1:9000" is not loopback: set admin.cert_file and admin.key_file`},
		{"admin all interfaces no tls", "admin:\n  listen: \":9000\"\n  token_file: t\n", `admin.listen: ":9000" is not loopback`},
		{"admin half tls", "admin:\n  token_file: t\n  cert_file: c\n", "admin: set both cert_file and key_file, or neither"},
		{"same address", "listen: 127.0.0.1:9000\n" + minimal, "admin.listen: same address as listen (127.0.0.1:9000)"},
		{"trusted proxy", "trusted_proxies: [10.0.0.0/8, 10.0.0.0/33, 192.0.2.7]\n" + minimal, `trusted_proxies[1]: "10.0.0.0/33" is not a CIDR or IP address`},
		{"policy", "policy: fastest\n" + minimal, `policy: unknown "fastest" (want round_robin, least_conn or p2c)`},
		{"health path", "health_check: {path: healthz}\n" + minimal, "health_check.path: must start with /"},
		{"health interval", "health_check: {interval: 0s}\n" + minimal, "health_check.interval: must be > 0"},
		{"health timeout", "health_check: {timeout: -1s}\n" + minimal, "health_check.timeout: must be > 0"},
		{"health timeout > interval", "health_check: {interval: 1s, timeout: 2s}\n" + minimal, "health_check.timeout: must be <= interval (1s)"},
		{"rise", "health_check: {rise: 0}\n" + minimal, "health_check.rise: must be >= 1"},
		{"fall", "health_check: {fall: -2}\n" + minimal, "health_check.fall: must be >= 1"},
		{"dial timeout", "proxy: {dial_timeout: 0s}\n" + minimal, "proxy.dial_timeout: must be > 0"},
		{"per try timeout", "proxy: {per_try_timeout: 0s}\n" + minimal, "proxy.per_try_timeout: must be > 0"},
		{"max retries", "proxy: {max_retries: -1}\n" + minimal, "proxy.max_retries: must be >= 0"},
		{"retry budget high", "proxy: {retry_budget: 1.5}\n" + minimal, "proxy.retry_budget: must be between 0 and 1"},
		{"retry budget low", "proxy: {retry_budget: -0.1}\n" + minimal, "proxy.retry_budget: must be between 0 and 1"},
		{"retry budget nan", "proxy: {retry_budget: .nan}\n" + minimal, "proxy.retry_budget: must be between 0 and 1"},
		{"retry body", "proxy: {retry_body_bytes: -1}\n" + minimal, "proxy.retry_body_bytes: must be >= 0"},
		{"max in flight", "proxy: {max_in_flight_per_backend: -1}\n" + minimal, "proxy.max_in_flight_per_backend: must be >= 0"},
		{"max conns", "limits: {max_conns: 0}\n" + minimal, "limits.max_conns: must be >= 1"},
		{"max header", "limits: {max_header_bytes: 100}\n" + minimal, "limits.max_header_bytes: must be >= 1024"},
		{"read header timeout", "limits: {read_header_timeout: 0s}\n" + minimal, "limits.read_header_timeout: must be > 0"},
		{"idle timeout", "limits: {idle_timeout: 0s}\n" + minimal, "limits.idle_timeout: must be > 0"},
		{"body read timeout", "limits: {body_read_timeout: 0s}\n" + minimal, "limits.body_read_timeout: must be > 0"},
		{"write timeout", "limits: {write_timeout: -1s}\n" + minimal, "limits.write_timeout: must be > 0"},
		{"body read timeout not a duration", "limits: {body_read_timeout: 60}\n" + minimal, "limits.body_read_timeout"},
		{"drain timeout", "drain_timeout: 0s\n" + minimal, "drain_timeout: must be > 0"},
		{"shutdown delay negative", "shutdown_delay: -1s\n" + minimal, "shutdown_delay: must be >= 0"},
		{"shutdown delay not a duration", "shutdown_delay: 5\n" + minimal, "shutdown_delay: line 1: cannot unmarshal"},
		{"backend name", "backends:\n  - {name: App_1, url: \"http://a:1\"}\n" + minimal, `backends[0].name: "App_1" must match [a-z0-9._-]{1,64}`},
		{"backend name long", "backends:\n  - {name: " + strings.Repeat("a", 65) + ", url: \"http://a:1\"}\n" + minimal, "backends[0].name: "},
		{"backend name empty", "backends:\n  - {url: \"http://a:1\"}\n" + minimal, `backends[0].name: "" must match`},
		{"backend dup", "backends:\n  - {name: a, url: \"http://a:1\"}\n  - {name: a, url: \"http://b:1\"}\n" + minimal, `backends[1].name: duplicate name "a" (also backends[0])`},
		{"backend scheme", "backends:\n  - {name: a, url: \"http://a:1\"}\n  - {name: b, url: \"ftp://b:1\"}\n" + minimal, "backends[1].url: must be http or https"},
		{"backend no scheme", "backends:\n  - {name: a, url: \"a:1\"}\n" + minimal, "backends[0].url: must be http or https"},
		{"backend no port", "backends:\n  - {name: a, url: \"http://a\"}\n" + minimal, "backends[0].url: must have a port"},
		{"backend path", "backends:\n  - {name: a, url: \"http://a:1/x\"}\n" + minimal, "backends[0].url: must not have a path"},
		{"backend query", "backends:\n  - {name: a, url: \"http://a:1?x=1\"}\n" + minimal, "backends[0].url: must not have a query"},
		{"backend fragment", "backends:\n  - {name: a, url: \"http://a:1#x\"}\n" + minimal, "backends[0].url: must not have a fragment"},
		{"backend userinfo", "backends:\n  - {name: a, url: \"http://u:p@a:1\"}\n" + minimal, "backends[0].url: must not contain userinfo"},
		{"backend no host", "backends:\n  - {name: a, url: \"http://:1\"}\n" + minimal, "backends[0].url: must have a host"},
		{"backend bad port", "backends:\n  - {name: a, url: \"http://a:0\"}\n" + minimal, "backends[0].url: has a bad port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			fes := FieldErrors(err)
			if len(fes) != 1 {
				t.Fatalf("got %d errors (%v), want 1: %q", len(fes), err, tt.want)
			}
			if got := fes[0].Error(); !strings.HasPrefix(got, tt.want) {
				t.Errorf("got %q, want prefix %q", got, tt.want)
			}
		})
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	y := `
listen: bad
policy: fastest
admin:
  listen: 0.0.0.0:9000
health_check: {rise: 0}
proxy: {retry_budget: 2}
backends:
  - {name: a, url: "http://a:1"}
  - {name: a, url: "ftp://a:1"}
`
	_, err := Parse([]byte(y))
	var got []string
	for _, fe := range FieldErrors(err) {
		got = append(got, fe.Path)
	}
	want := []string{"listen", "admin.listen", "admin.token_file", "policy", "health_check.rise",
		"proxy.retry_budget", "backends[1].name", "backends[1].url"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got paths %q, want %q\n(error: %v)", got, want, err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("errors.As(*FieldError) failed on %v", err)
	}
	if lines := strings.Count(err.Error(), "\n") + 1; lines != len(want) {
		t.Errorf("got %d lines in the message, want %d:\n%v", lines, len(want), err)
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"top level", minimal + "listn: \":443\"\n", []string{"listn: line 3: unknown key"}},
		{"nested", minimal + "health_check:\n  interval: 1s\n  intervall: 2s\n", []string{"health_check.intervall: line 5: unknown key"}},
		{"in a list", minimal + "backends:\n  - name: a\n    url: http://a:1\n  - name: b\n    uri: http://b:1\n", []string{"backends[1].uri: line 7: unknown key",
			"backends[1].url: must be http or https"}}, // and the rest of the file is still validated
		{"acme", minimal + "tls:\n  acme:\n    domain: a.test\n", []string{"tls.acme.domain: line 5: unknown key",
			"tls.acme.domains: at least one domain is required"}},
		{"several", "foo: 1\n" + minimal + "admin2: {}\nproxy: {retries: 3}\n", []string{
			"foo: line 1: unknown key", "admin2: line 4: unknown key", "proxy.retries: line 5: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("got no error")
			}
			msg := err.Error()
			lines := strings.Split(msg, "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(tt.want), msg)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("got %q, want prefix %q", lines[i], w)
				}
			}
			var uk *UnknownKeyError
			if !errors.As(err, &uk) {
				t.Errorf("errors.As(*UnknownKeyError) failed on %v", err)
			}
		})
	}
}

// Unknown keys, values of the wrong type and invalid values are reported
// together, each with its key path.
func TestEveryKindOfProblemAtOnce(t *testing.T) {
	y := `
admin:
  token_file: /t
policy: fastest
trusted_proxies: 10.0.0.0/8
tls: [a]
health_check:
  interval: abc
  rise: x
  bogus: 1
proxy:
  max_retries: -1
limits: {max_conns: many, idle_timeout: 1m}
backends:
  - name: App
    url: ftp://x
`
	_, err := Parse([]byte(y))
	if err == nil {
		t.Fatal("got no error")
	}
	want := []string{
		"trusted_proxies: line 5: want a list",
		"tls: line 6: want a mapping of keys",
		"health_check.interval: line 8: cannot unmarshal !!str `abc` into time.Duration",
		"health_check.rise: line 9: cannot unmarshal !!str `x` into int",
		"health_check.bogus: line 10: unknown key",
		"limits.max_conns: line 13: cannot unmarshal !!str `many` into int",
		"tls: set either cert_file+key_file or acme",
		`policy: unknown "fastest"`,
		"proxy.max_retries: must be >= 0",
		`backends[0].name: "App" must match`,
		"backends[0].url: must be http or https",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d: got %q, want prefix %q", i, lines[i], w)
		}
	}
}

func TestSyntaxAndTypeErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"duration without unit", minimal + "drain_timeout: 30\n", "line 3"},
		{"bad duration", minimal + "health_check: {interval: 2x}\n", "line 3"},
		{"string for int", minimal + "health_check:\n  rise: two\n", "line 4"},
		{"duplicate key", minimal + "policy: p2c\npolicy: least_conn\n", "already defined"},
		{"bad yaml", "admin: [\n", "yaml"},
		{"two documents", minimal + "---\n" + minimal, "more than one YAML document"},
		{"list for map", "admin: [1]\n", "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestEmptyFileNeedsToken(t *testing.T) {
	_, err := Parse(nil)
	fes := FieldErrors(err)
	if len(fes) != 1 || fes[0].Path != "admin.token_file" {
		t.Fatalf("got %v, want only admin.token_file: required", err)
	}
	cfg, err := Decode(nil)
	if err != nil || cfg.Listen != ":443" {
		t.Fatalf("Decode(nil): got %+v, %v; want defaults", cfg, err)
	}
}

func TestLoadNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.yaml")
	if err := os.WriteFile(path, []byte("policy: x\n"+minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `policy: unknown "x"`) {
		t.Fatalf("got %v, want the path and the policy problem", err)
	}
	if len(FieldErrors(err)) != 1 {
		t.Errorf("got %d FieldErrors through the wrap, want 1", len(FieldErrors(err)))
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want ErrNotExist", err)
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9000", true},
		{"127.255.0.1:9000", true},
		{"[::1]:9000", true},
		{"localhost:9000", true},
		{"LOCALHOST:1", true},
		{"[::ffff:127.0.0.1]:1", true},
		{":9000", false},
		{"0.0.0.0:9000", false},
		{"[::]:9000", false},
		{"10.0.0.1:9000", false},
		{"example.com:9000", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := IsLoopback(tt.addr); got != tt.want {
			t.Errorf("IsLoopback(%q): got %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestRestartNeeded(t *testing.T) {
	base := func() *Config {
		c := Default()
		c.Admin.TokenFile = "t"
		return c
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"nothing", func(*Config) {}, nil},
		{"reloadable only", func(c *Config) {
			c.Policy = "p2c"
			c.Backends = []Backend{{Name: "a", URL: "http://a:1"}}
			c.HealthCheck.Rise = 5
			c.Admin.TokenFile = "other"
		}, nil},
		{"listen", func(c *Config) { c.Listen = ":8443" }, []string{"listen"}},
		{"http_listen", func(c *Config) { c.HTTPListen = ":80" }, []string{"http_listen"}},
		{"admin.listen", func(c *Config) { c.Admin.Listen = "127.0.0.1:9001" }, []string{"admin.listen"}},
		{"admin cert", func(c *Config) { c.Admin.CertFile, c.Admin.KeyFile = "c", "k" }, []string{"admin.cert_file/key_file"}},
		{"tls", func(c *Config) { c.TLS = &TLS{CertFile: "c", KeyFile: "k"} }, []string{"tls"}},
		{"state_file", func(c *Config) { c.StateFile = "s" }, []string{"state_file"}},
		{"all listeners", func(c *Config) { c.Listen, c.HTTPListen, c.Admin.Listen = "a:1", "a:2", "a:3" },
			[]string{"listen", "http_listen", "admin.listen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := base()
			tt.change(cur)
			if got := RestartNeeded(base(), cur); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// tls.hsts applies without a restart.
	a0, b0 := base(), base()
	a0.TLS = &TLS{CertFile: "c", KeyFile: "k"}
	b0.TLS = &TLS{CertFile: "c", KeyFile: "k", HSTS: "max-age=1"}
	if got := RestartNeeded(a0, b0); got != nil {
		t.Errorf("hsts change: got %q, want none", got)
	}
	// Same TLS content in different pointers is no change.
	a, b := base(), base()
	a.TLS = &TLS{CertFile: "c", KeyFile: "k"}
	b.TLS = &TLS{CertFile: "c", KeyFile: "k"}
	if got := RestartNeeded(a, b); got != nil {
		t.Errorf("equal TLS: got %q, want none", got)
	}
}

func TestReadToken(t *testing.T) {
	const tok = "s3cret-t0ken-value"
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
		wantErr string
	}{
		{"ok", tok + "\n", 0o600, tok, ""},
		{"owner read only", "  " + tok + " \t\r\n", 0o400, tok, ""},
		{"hex", "5f0c9e2b7a41d3c8e6f0a2b4c6d8e0f1", 0o600, "5f0c9e2b7a41d3c8e6f0a2b4c6d8e0f1", ""},
		{"group readable", tok, 0o640, "", "readable by group/other (mode 0640): run chmod 600"},
		{"other readable", tok, 0o604, "", "readable by group/other (mode 0604): run chmod 600"},
		{"group writable", tok, 0o620, "", "readable by group/other"},
		{"empty", "", 0o600, "", "is empty"},
		{"whitespace only", " \n\t\n", 0o600, "", "is empty"},
		{"short", "s3cret-t0ken", 0o600, "", "holds 12 characters, fewer than 16"},
		{"change-me", "CHANGE-ME-to-a-random-token-0123", 0o600, "", "placeholder (it contains CHANGE-ME)"},
		{"changeme folded", "please_Change_Me_0123456789", 0o600, "", "placeholder (it contains CHANGE-ME)"},
		{"few characters", "0000000000000000000000000000000000000000", 0o600, "", "only 1 different characters"},
		{"repeated pattern", "abcabcabcabcabcabcabc", 0o600, "", "only 3 different characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := ReadToken(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("got (%q, %v), want an error naming %s containing %q", got, err, path, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got (%q, %v), want %q", got, err, tt.want)
			}
		})
	}
	if _, err := ReadToken(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: got %v, want ErrNotExist", err)
	}
	if _, err := ReadToken(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: got %v, want not a regular file", err)
	}
}
