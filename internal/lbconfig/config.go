// Package lbconfig reads, defaults and validates the configuration file of
// `lb serve -config FILE` (see DESIGN.md: the keys and defaults are the interface).
package lbconfig

import "time"

// Default values, as DESIGN.md lists them.
const (
	DefaultListen            = ":443"
	DefaultAdminListen       = "127.0.0.1:9000"
	DefaultPolicy            = "least_conn"
	DefaultHealthPath        = "/healthz"
	DefaultHealthInterval    = 2 * time.Second
	DefaultHealthTimeout     = time.Second
	DefaultRise              = 2
	DefaultFall              = 2
	DefaultDialTimeout       = 2 * time.Second
	DefaultPerTryTimeout     = 5 * time.Second
	DefaultMaxRetries        = 2
	DefaultRetryBudget       = 0.2
	DefaultRetryBodyBytes    = 65536
	DefaultMaxConns          = 10000
	DefaultMaxHeaderBytes    = 65536
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultShutdownDelay     = 0 * time.Second
	DefaultBodyReadTimeout   = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultDrainTimeout      = 30 * time.Second
	// DefaultACMEDirectory is Let's Encrypt's production directory.
	DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"
	// DefaultACMECacheDir is where ACME accounts and certificates are kept.
	DefaultACMECacheDir = "/var/lib/lb/acme"
)

// Policies lists the accepted values of the policy key.
var Policies = []string{"round_robin", "least_conn", "p2c"}

// Config is the whole lb configuration file.
type Config struct {
	// Listen is the HTTPS address (plain HTTP when TLS is nil).
	Listen string `yaml:"listen"`
	// HTTPListen is the optional plain-HTTP address that answers ACME HTTP-01
	// challenges and redirects everything else to https.
	HTTPListen string `yaml:"http_listen"`
	// TLS is nil when the file has no tls block: lb then serves plain HTTP.
	TLS *TLS `yaml:"tls"`
	// Admin is the admin API listener.
	Admin Admin `yaml:"admin"`
	// StateFile keeps drain states by backend name across restarts ("" = none).
	StateFile string `yaml:"state_file"`
	// TrustedProxies are CIDRs (or bare IPs) whose X-Forwarded-For is kept.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Policy is round_robin, least_conn or p2c.
	Policy string `yaml:"policy"`
	// HealthCheck configures the active checker.
	HealthCheck HealthCheck `yaml:"health_check"`
	// Proxy configures timeouts, retries and per-backend limits.
	Proxy Proxy `yaml:"proxy"`
	// Limits bounds client connections and request headers.
	Limits Limits `yaml:"limits"`
	// ShutdownDelay is how long lb keeps accepting and serving after SIGTERM, with
	// /readyz answering 503, before it stops accepting and drains (0: drain at once).
	ShutdownDelay time.Duration `yaml:"shutdown_delay"`
	// DrainTimeout bounds drain -wait, remove, rollout and lb's own SIGTERM.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Backends defines membership, in order.
	Backends []Backend `yaml:"backends"`
}

// TLS is the tls block: exactly one of CertFile+KeyFile or ACME.
type TLS struct {
	// CertFile and KeyFile are PEM files, re-read on SIGHUP.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ACME obtains certificates automatically when set.
	ACME *ACME `yaml:"acme"`
	// HSTS is the Strict-Transport-Security value for HTTPS responses ("" = none).
	HSTS string `yaml:"hsts"`
}

// ACME is the tls.acme block.
type ACME struct {
	// Domains are the only names certificates are obtained for (host policy).
	Domains []string `yaml:"domains"`
	// Email is the ACME account contact (optional).
	Email string `yaml:"email"`
	// DirectoryURL is the ACME directory (default Let's Encrypt production).
	DirectoryURL string `yaml:"directory_url"`
	// CacheDir keeps the account key and certificates.
	CacheDir string `yaml:"cache_dir"`
	// CacheDatabaseURL shares certificates between lbs through PostgreSQL
	// (written through to CacheDir).
	CacheDatabaseURL string `yaml:"cache_database_url"`
	// CacheKeyFile holds the secret that encrypts private keys stored in
	// PostgreSQL (required with CacheDatabaseURL; same rules as the token file).
	// Not in DESIGN.md's list: added with cache_database_url.
	CacheKeyFile string `yaml:"cache_key_file"`
	// CAFile is an extra root CA (PEM) trusted for the ACME server's HTTPS.
	CAFile string `yaml:"ca_file"`
	// RenewBefore renews this long before expiry (0 = autocert's 30 days).
	// Not in DESIGN.md's list: lets one lb of a pair renew first.
	RenewBefore time.Duration `yaml:"renew_before"`
}

// Admin is the admin block.
type Admin struct {
	// Listen is the admin API address; non-loopback needs CertFile/KeyFile.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token (required; read with ReadToken).
	TokenFile string `yaml:"token_file"`
	// CertFile and KeyFile make the admin listener HTTPS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// HealthCheck is the health_check block.
type HealthCheck struct {
	Path     string        `yaml:"path"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	// Rise is the number of consecutive passes that mark a backend up.
	Rise int `yaml:"rise"`
	// Fall is the number of consecutive failures that mark a backend down.
	Fall int `yaml:"fall"`
}

// Proxy is the proxy block.
type Proxy struct {
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// PerTryTimeout runs from the request being written to the response headers.
	PerTryTimeout time.Duration `yaml:"per_try_timeout"`
	MaxRetries    int           `yaml:"max_retries"`
	// RetryBudget is the share of requests that may be retries (0..1).
	RetryBudget float64 `yaml:"retry_budget"`
	// RetryBodyBytes is the largest request body buffered for replay.
	RetryBodyBytes int64 `yaml:"retry_body_bytes"`
	// MaxInFlightPerBackend is 0 for unlimited.
	MaxInFlightPerBackend int `yaml:"max_in_flight_per_backend"`
}

// Limits is the limits block.
type Limits struct {
	MaxConns          int           `yaml:"max_conns"`
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// BodyReadTimeout is the longest gap between two reads of a request body.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`
	// WriteTimeout is the longest a write to a client may block.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	IdleTimeout  time.Duration `yaml:"idle_timeout"`
}

// Backend is one entry of backends.
type Backend struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
}

// Default returns a Config with every default of DESIGN.md and no backends.
// Admin.TokenFile has no default: it is required.
func Default() *Config {
	return &Config{
		Listen:         DefaultListen,
		Admin:          Admin{Listen: DefaultAdminListen},
		TrustedProxies: []string{},
		Policy:         DefaultPolicy,
		HealthCheck: HealthCheck{
			Path:     DefaultHealthPath,
			Interval: DefaultHealthInterval,
			Timeout:  DefaultHealthTimeout,
			Rise:     DefaultRise,
			Fall:     DefaultFall,
		},
		Proxy: Proxy{
			DialTimeout:    DefaultDialTimeout,
			PerTryTimeout:  DefaultPerTryTimeout,
			MaxRetries:     DefaultMaxRetries,
			RetryBudget:    DefaultRetryBudget,
			RetryBodyBytes: DefaultRetryBodyBytes,
		},
		Limits: Limits{
			MaxConns:          DefaultMaxConns,
			MaxHeaderBytes:    DefaultMaxHeaderBytes,
			ReadHeaderTimeout: DefaultReadHeaderTimeout,
			BodyReadTimeout:   DefaultBodyReadTimeout,
			WriteTimeout:      DefaultWriteTimeout,
			IdleTimeout:       DefaultIdleTimeout,
		},
		ShutdownDelay: DefaultShutdownDelay,
		DrainTimeout:  DefaultDrainTimeout,
		Backends:      []Backend{},
	}
}

// applyDefaults fills defaults inside optional blocks that the file set.
func (c *Config) applyDefaults() {
	if c.TrustedProxies == nil {
		c.TrustedProxies = []string{}
	}
	if c.Backends == nil {
		c.Backends = []Backend{}
	}
	if c.TLS != nil && c.TLS.ACME != nil {
		a := c.TLS.ACME
		if a.DirectoryURL == "" {
			a.DirectoryURL = DefaultACMEDirectory
		}
		if a.CacheDir == "" {
			a.CacheDir = DefaultACMECacheDir
		}
	}
}
