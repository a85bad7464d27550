package main

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

const (
	testKey1 = "0123456789abcdef0123456789abcdef-one"
	testKey2 = "0123456789abcdef0123456789abcdef-two"
)

// envMap is a getenv over a map.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// baseEnv is the least environment that starts the app.
func baseEnv() map[string]string {
	return map[string]string{
		"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"SESSION_KEYS": testKey1,
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(envMap(baseEnv()))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Listen", c.Listen, ":8080"},
		{"SessionMaxAge", c.SessionMaxAge, 720 * time.Hour},
		{"CookieSecure", c.CookieSecure, true},
		{"TrustedProxies", len(c.TrustedProxies), 0},
		{"Instance", c.Instance, ""},
		{"MaxUploadBytes", c.MaxUploadBytes, int64(32 << 20)},
		{"DBMaxConns", c.DBMaxConns, int32(16)},
		{"DBRetryTimeout", c.DBRetryTimeout, 4 * time.Second},
		{"Pool.MaxConns", c.Pool.MaxConns, int32(16)},
		{"ShutdownDelay", c.ShutdownDelay, 5 * time.Second},
		{"ShutdownTimeout", c.ShutdownTimeout, 25 * time.Second},
		{"LogFormat", c.LogFormat, "auto"},
		{"SessionKeys", strings.Join(c.SessionKeys, ","), testKey1},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadConfigValues(t *testing.T) {
	env := baseEnv()
	env["APP_LISTEN"] = "127.0.0.1:0"
	env["SESSION_KEYS"] = testKey1 + ", " + testKey2
	env["SESSION_MAX_AGE"] = "24h"
	env["COOKIE_SECURE"] = "false"
	env["TRUSTED_PROXIES"] = "10.0.0.0/8, 192.168.1.1"
	env["APP_INSTANCE"] = "app-7"
	env["MAX_UPLOAD_BYTES"] = "1048576"
	env["DB_MAX_CONNS"] = "8"
	env["DB_RETRY_TIMEOUT"] = "8s"
	env["SHUTDOWN_DELAY"] = "0s"
	env["SHUTDOWN_TIMEOUT"] = "3s"
	env["LOG_FORMAT"] = "json"
	c, err := loadConfig(envMap(env))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Listen", c.Listen, "127.0.0.1:0"},
		{"SessionKeys", strings.Join(c.SessionKeys, "|"), testKey1 + "|" + testKey2},
		{"SessionMaxAge", c.SessionMaxAge, 24 * time.Hour},
		{"CookieSecure", c.CookieSecure, false},
		{"TrustedProxies", strings.Join(c.TrustedProxies, "|"), "10.0.0.0/8|192.168.1.1"},
		{"Instance", c.Instance, "app-7"},
		{"MaxUploadBytes", c.MaxUploadBytes, int64(1 << 20)},
		{"DBMaxConns", c.DBMaxConns, int32(8)},
		{"DBRetryTimeout", c.DBRetryTimeout, 8 * time.Second},
		{"Pool.MaxConns", c.Pool.MaxConns, int32(8)},
		{"ShutdownDelay", c.ShutdownDelay, time.Duration(0)},
		{"ShutdownTimeout", c.ShutdownTimeout, 3 * time.Second},
		{"LogFormat", c.LogFormat, "json"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// TestCookieSecure: Secure (and the __Host- name) is dropped only by COOKIE_SECURE=false.
func TestCookieSecure(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{{"", true}, {"true", true}, {"TRUE", true}, {"false", false}, {"False", false}} {
		env := baseEnv()
		env["COOKIE_SECURE"] = tc.v
		c, err := loadConfig(envMap(env))
		if err != nil || c.CookieSecure != tc.want {
			t.Errorf("COOKIE_SECURE=%q: CookieSecure %v, %v; want %v", tc.v, c.CookieSecure, err, tc.want)
		}
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		set   map[string]string
		unset string
		want  string // the variable named
	}{
		{"no database", nil, "DATABASE_URL", "DATABASE_URL"},
		{"bad database", map[string]string{"DATABASE_URL": "postgres://x:y@h:notaport/db"}, "", "DATABASE_URL"},
		{"no keys", nil, "SESSION_KEYS", "SESSION_KEYS"},
		{"short key", map[string]string{"SESSION_KEYS": "short"}, "", "SESSION_KEYS"},
		{"one short key of two", map[string]string{"SESSION_KEYS": testKey1 + ",short"}, "", "SESSION_KEYS"},
		{"duplicate keys", map[string]string{"SESSION_KEYS": testKey1 + "," + testKey1}, "", "SESSION_KEYS"},
		{"placeholder key", map[string]string{"SESSION_KEYS": "CHANGE-ME-to-at-least-32-random-characters-000000"}, "", "SESSION_KEYS"},
		{"placeholder second key", map[string]string{"SESSION_KEYS": testKey1 + ",please_changeme_0123456789abcdefghij"}, "", "SESSION_KEYS"},
		{"key of few characters", map[string]string{"SESSION_KEYS": strings.Repeat("ab", 20)}, "", "SESSION_KEYS"},
		{"placeholder database password", map[string]string{"DATABASE_URL": "postgres://app:CHANGE-ME@db:5432/app"}, "", "DATABASE_URL"},
		{"bad listen", map[string]string{"APP_LISTEN": "8080"}, "", "APP_LISTEN"},
		{"bad max age", map[string]string{"SESSION_MAX_AGE": "forever"}, "", "SESSION_MAX_AGE"},
		{"zero max age", map[string]string{"SESSION_MAX_AGE": "0s"}, "", "SESSION_MAX_AGE"},
		{"bad cookie secure", map[string]string{"COOKIE_SECURE": "maybe"}, "", "COOKIE_SECURE"},
		{"cookie secure 0", map[string]string{"COOKIE_SECURE": "0"}, "", "COOKIE_SECURE"},
		{"cookie secure f", map[string]string{"COOKIE_SECURE": "f"}, "", "COOKIE_SECURE"},
		{"key of 32 bytes, 16 characters", map[string]string{"SESSION_KEYS": strings.Repeat("é", 16)}, "", "SESSION_KEYS"},
		{"bad proxy", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,lb.example"}, "", "TRUSTED_PROXIES"},
		{"bad upload size", map[string]string{"MAX_UPLOAD_BYTES": "32MiB"}, "", "MAX_UPLOAD_BYTES"},
		{"tiny upload size", map[string]string{"MAX_UPLOAD_BYTES": "10"}, "", "MAX_UPLOAD_BYTES"},
		{"bad db conns", map[string]string{"DB_MAX_CONNS": "1"}, "", "DB_MAX_CONNS"},
		{"bad retry timeout", map[string]string{"DB_RETRY_TIMEOUT": "4"}, "", "DB_RETRY_TIMEOUT"},
		{"retry timeout with junk", map[string]string{"DB_RETRY_TIMEOUT": "4s "}, "", "DB_RETRY_TIMEOUT"},
		{"negative retry timeout", map[string]string{"DB_RETRY_TIMEOUT": "-4s"}, "", "DB_RETRY_TIMEOUT"},
		{"zero retry timeout", map[string]string{"DB_RETRY_TIMEOUT": "0s"}, "", "DB_RETRY_TIMEOUT"},
		{"tiny retry timeout", map[string]string{"DB_RETRY_TIMEOUT": "10ms"}, "", "DB_RETRY_TIMEOUT"},
		{"huge retry timeout", map[string]string{"DB_RETRY_TIMEOUT": "1h"}, "", "DB_RETRY_TIMEOUT"},
		{"bad delay", map[string]string{"SHUTDOWN_DELAY": "-1s"}, "", "SHUTDOWN_DELAY"},
		{"bad timeout", map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, "", "SHUTDOWN_TIMEOUT"},
		{"bad log format", map[string]string{"LOG_FORMAT": "xml"}, "", "LOG_FORMAT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := baseEnv()
			delete(env, tc.unset)
			for k, v := range tc.set {
				env[k] = v
			}
			_, err := loadConfig(envMap(env))
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *configError", err)
			}
			if ce.Var != tc.want {
				t.Errorf("variable = %s, want %s (%v)", ce.Var, tc.want, err)
			}
			if !strings.HasPrefix(err.Error(), tc.want+": ") {
				t.Errorf("message %q does not start with the variable", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message %q is more than one line", err)
			}
			if exitCode(err) != 2 {
				t.Errorf("exit code = %d, want 2", exitCode(err))
			}
		})
	}
}

func TestLoadConfigHidesDatabasePassword(t *testing.T) {
	env := baseEnv()
	env["DATABASE_URL"] = "postgres://app:s3cret-pw@db:notaport/app"
	_, err := loadConfig(envMap(env))
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("error %q shows the password", err)
	}
}

// TestAppConfig: file transfers get half of DB_MAX_CONNS (at least one).
func TestAppConfig(t *testing.T) {
	for _, tc := range []struct {
		conns string
		want  int
	}{{"", 8}, {"2", 1}, {"3", 1}, {"10", 5}} {
		env := baseEnv()
		env["DB_MAX_CONNS"] = tc.conns
		c, err := loadConfig(envMap(env))
		if err != nil {
			t.Fatal(err)
		}
		if got := appConfig(c).MaxTransfers; got != tc.want {
			t.Errorf("DB_MAX_CONNS=%q: MaxTransfers %d, want %d", tc.conns, got, tc.want)
		}
	}
}

// TestHTTPServerLimits: every limit set; IdleTimeout 120 s, longer than lb's
// 60 s idle timeout to backends, so that lb, not the app, closes an idle
// connection (and never sends a request on one the app is closing).
func TestHTTPServerLimits(t *testing.T) {
	const lbBackendIdle = 60 * time.Second
	srv := newHTTPServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if srv.IdleTimeout != 120*time.Second || srv.IdleTimeout <= lbBackendIdle {
		t.Errorf("IdleTimeout %v, want 120s (> lb's %v)", srv.IdleTimeout, lbBackendIdle)
	}
	if srv.ReadHeaderTimeout <= 0 || srv.MaxHeaderBytes <= 0 || srv.ErrorLog == nil {
		t.Errorf("ReadHeaderTimeout %v, MaxHeaderBytes %d, ErrorLog %v: want all set", srv.ReadHeaderTimeout, srv.MaxHeaderBytes, srv.ErrorLog)
	}
}

// TestEnvExampleRefusedAsShipped loads deploy/app.env.example as it ships:
// its placeholders must stop the app (exit 2, naming the variable) until
// they are replaced, and nothing else in it may.
func TestEnvExampleRefusedAsShipped(t *testing.T) {
	data, err := os.ReadFile("../../deploy/app.env.example")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	steps := []struct {
		fix     func()
		wantVar string
	}{
		{func() {}, "DATABASE_URL"},
		{func() { env["DATABASE_URL"] = strings.Replace(env["DATABASE_URL"], "CHANGE-ME", "k8Zr2pQx", 1) }, "SESSION_KEYS"},
		{func() { env["SESSION_KEYS"] = testKey1 }, ""},
	}
	for i, s := range steps {
		s.fix()
		_, err := loadConfig(envMap(env))
		var ce *configError
		switch {
		case s.wantVar == "" && err != nil:
			t.Errorf("step %d: the example with real secrets: %v", i, err)
		case s.wantVar != "" && (!errors.As(err, &ce) || ce.Var != s.wantVar || !strings.Contains(err.Error(), "placeholder")):
			t.Errorf("step %d: got %v, want a placeholder error naming %s", i, err, s.wantVar)
		}
	}
}
