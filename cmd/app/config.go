package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"outrigger/internal/app/pgretry"
	"outrigger/internal/clientip"
	"outrigger/internal/logging"
	"outrigger/internal/watchdog"
)

// config is the app's configuration, read from the environment (DESIGN's table).
type config struct {
	DatabaseURL     string
	Pool            *pgxpool.Config
	Listen          string
	SessionKeys     []string
	SessionMaxAge   time.Duration
	CookieSecure    bool
	TrustedProxies  []string
	Resolver        *clientip.Resolver
	Instance        string // "" = hostname:port, filled in once the listener is bound
	MaxUploadBytes  int64
	DBMaxConns      int32
	DBRetryTimeout  time.Duration
	ShutdownDelay   time.Duration
	ShutdownTimeout time.Duration
	LogFormat       string
	// Watchdog is systemd's watchdog (WatchdogSec= in the unit), when WatchdogOn.
	Watchdog   watchdog.Config
	WatchdogOn bool
}

// configError is a bad or missing environment variable; main exits with status 2.
type configError struct {
	Var string
	Msg string
}

func (e *configError) Error() string { return e.Var + ": " + e.Msg }

// minSessionKeyLen is the shortest secret SESSION_KEYS accepts.
const minSessionKeyLen = 32

// DB_RETRY_TIMEOUT's bounds: below the first, a busy database answers 503 to a
// healthy request; above the second, lb has long given up (its per_try_timeout).
const (
	minDBRetryTimeout = 100 * time.Millisecond
	maxDBRetryTimeout = 5 * time.Minute
)

// loadConfig reads the environment through getenv and checks every value.
// The first problem found is returned as a *configError.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Listen:          ":8080",
		SessionMaxAge:   720 * time.Hour,
		CookieSecure:    true,
		MaxUploadBytes:  32 << 20,
		DBMaxConns:      16,
		DBRetryTimeout:  pgretry.DefaultBudget,
		ShutdownDelay:   5 * time.Second,
		ShutdownTimeout: 25 * time.Second,
		LogFormat:       "auto",
	}
	bad := func(name, format string, args ...any) (config, error) {
		return config{}, &configError{Var: name, Msg: fmt.Sprintf(format, args...)}
	}

	c.DatabaseURL = strings.TrimSpace(getenv("DATABASE_URL"))
	if c.DatabaseURL == "" {
		return bad("DATABASE_URL", "required: a PostgreSQL connection string, e.g. postgres://app@127.0.0.1:5432/app")
	}
	pc, err := pgxpool.ParseConfig(c.DatabaseURL)
	if err != nil {
		// The error text of pgx quotes the connection string (password
		// redacted only on a best-effort basis), so it is not repeated here.
		return bad("DATABASE_URL", "not a valid PostgreSQL connection string")
	}
	if hasChangeMe(pc.ConnConfig.Password) {
		return bad("DATABASE_URL", "the password is a placeholder (it contains CHANGE-ME): put the real one in (or use a client certificate)")
	}
	c.Pool = pc

	if v := getenv("APP_LISTEN"); v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return bad("APP_LISTEN", "%q is not host:port: %v", v, err)
		}
		c.Listen = v
	}

	keys, err := parseSessionKeys(getenv("SESSION_KEYS"))
	if err != nil {
		return bad("SESSION_KEYS", "%v", err)
	}
	c.SessionKeys = keys

	if c.SessionMaxAge, err = positiveDuration(getenv, "SESSION_MAX_AGE", c.SessionMaxAge); err != nil {
		return config{}, err
	}
	if c.SessionMaxAge < time.Minute {
		return bad("SESSION_MAX_AGE", "%v is too short (at least 1m)", c.SessionMaxAge)
	}
	// Only "false" drops Secure and the __Host- prefix: "0", "f" or "no" are
	// refused rather than taken as an easy way to weaken the cookie.
	switch v := getenv("COOKIE_SECURE"); {
	case v == "" || strings.EqualFold(v, "true"):
	case strings.EqualFold(v, "false"):
		c.CookieSecure = false
	default:
		return bad("COOKIE_SECURE", "%q is not true or false", v)
	}

	for _, s := range strings.Split(getenv("TRUSTED_PROXIES"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.TrustedProxies = append(c.TrustedProxies, s)
		}
	}
	if c.Resolver, err = clientip.NewResolver(c.TrustedProxies); err != nil {
		return bad("TRUSTED_PROXIES", "%v", err)
	}

	c.Instance = strings.TrimSpace(getenv("APP_INSTANCE"))

	if v := getenv("MAX_UPLOAD_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 {
			return bad("MAX_UPLOAD_BYTES", "%q is not a whole number of bytes of at least 1024", v)
		}
		c.MaxUploadBytes = n
	}
	if v := getenv("DB_MAX_CONNS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 2 || n > 1000 {
			return bad("DB_MAX_CONNS", "%q is not a number from 2 to 1000", v)
		}
		c.DBMaxConns = int32(n)
	}
	c.Pool.MaxConns = c.DBMaxConns
	if v := getenv("DB_RETRY_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < minDBRetryTimeout || d > maxDBRetryTimeout {
			return bad("DB_RETRY_TIMEOUT", "%q is not a duration from %v to %v, such as 4s", v, minDBRetryTimeout, maxDBRetryTimeout)
		}
		c.DBRetryTimeout = d
	}

	if c.ShutdownDelay, err = nonNegativeDuration(getenv, "SHUTDOWN_DELAY", c.ShutdownDelay); err != nil {
		return config{}, err
	}
	if c.ShutdownTimeout, err = nonNegativeDuration(getenv, "SHUTDOWN_TIMEOUT", c.ShutdownTimeout); err != nil {
		return config{}, err
	}
	if v := getenv("LOG_FORMAT"); v != "" {
		if !logging.ValidFormat(v) {
			return bad("LOG_FORMAT", "%q is not one of auto, text, json", v)
		}
		c.LogFormat = v
	}
	if c.Watchdog, c.WatchdogOn, err = watchdog.FromEnv(getenv, os.Getpid()); err != nil {
		return bad("WATCHDOG_USEC", "%v (systemd sets it from WatchdogSec=)", err)
	}
	return c, nil
}

// parseSessionKeys splits SESSION_KEYS: comma-separated secrets of at least
// 32 characters, no duplicates, at least one.
func parseSessionKeys(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, errors.New("required: comma-separated secrets of at least 32 characters (the first signs and encrypts, the rest still verify)")
	}
	var keys []string
	seen := make(map[string]bool)
	for i, k := range strings.Split(v, ",") {
		k = strings.TrimSpace(k)
		switch {
		case utf8.RuneCountInString(k) < minSessionKeyLen:
			return nil, fmt.Errorf("key %d is %d characters long; each needs at least %d", i+1, utf8.RuneCountInString(k), minSessionKeyLen)
		case seen[k]:
			return nil, fmt.Errorf("key %d repeats an earlier key", i+1)
		}
		if err := checkSecret(k); err != nil {
			return nil, fmt.Errorf("key %d %v: generate one with openssl rand -base64 48", i+1, err)
		}
		seen[k] = true
		keys = append(keys, k)
	}
	return keys, nil
}

// minSecretDistinct is the fewest different characters a secret may have: a
// random key of 32 hex digits has fewer with a chance below 1 in 10^12.
const minSecretDistinct = 6

// checkSecret refuses a placeholder rather than a random secret: one that
// contains CHANGE-ME (in any case, with -, _, a space or nothing between the
// words), or has fewer than 6 different characters. (lb applies the same rule
// to its token files; the two sides share no package for it.)
func checkSecret(s string) error {
	if hasChangeMe(s) {
		return errors.New("is a placeholder (it contains CHANGE-ME)")
	}
	distinct := map[rune]bool{}
	for _, r := range s {
		distinct[r] = true
	}
	if len(distinct) < minSecretDistinct {
		return fmt.Errorf("is a placeholder (only %d different characters; a random secret has more)", len(distinct))
	}
	return nil
}

// hasChangeMe reports whether s contains CHANGE-ME, in any case, with -, _,
// a space or nothing between the words.
func hasChangeMe(s string) bool {
	folded := strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(s))
	return strings.Contains(folded, "changeme")
}

func positiveDuration(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	d, err := nonNegativeDuration(getenv, name, def)
	if err == nil && d == 0 {
		err = &configError{Var: name, Msg: "must be more than 0"}
	}
	return d, err
}

func nonNegativeDuration(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, &configError{Var: name, Msg: fmt.Sprintf("%q is not a duration such as 5s or 720h", v)}
	}
	return d, nil
}

// defaultInstance is hostname:port of the bound listener.
func defaultInstance(addr string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "app"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return host
	}
	return host + ":" + port
}
