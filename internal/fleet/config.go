package fleet

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// LBOptions are the lb settings the fleet writes into the generated config file.
// Zero fields take the fleet's defaults, which are tuned for tests (short intervals).
type LBOptions struct {
	Listen         string        // HTTPS listener; default 127.0.0.1:0
	AdminListen    string        // admin API; default 127.0.0.1:0
	Policy         string        // default: lb's own (least_conn)
	HealthInterval time.Duration // default 500ms
	HealthTimeout  time.Duration // default 400ms
	Rise, Fall     int           // default 2, 2
	DialTimeout    time.Duration // default 1s
	PerTryTimeout  time.Duration // default 1s
	MaxRetries     *int          // default: lb's own (2)
	RetryBudget    float64       // default: lb's own (0.2)
	DrainTimeout   time.Duration // default 10s
	TrustedProxies []string      // default none
}

func (o *LBOptions) defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defd := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.Listen, "127.0.0.1:0")
	def(&o.AdminListen, "127.0.0.1:0")
	defd(&o.HealthInterval, 500*time.Millisecond)
	defd(&o.HealthTimeout, 400*time.Millisecond)
	defd(&o.DialTimeout, time.Second)
	defd(&o.PerTryTimeout, time.Second)
	defd(&o.DrainTimeout, 10*time.Second)
	if o.Rise == 0 {
		o.Rise = 2
	}
	if o.Fall == 0 {
		o.Fall = 2
	}
}

// lbFile is the part of DESIGN's lb YAML that the fleet writes.
type lbFile struct {
	Listen string `yaml:"listen"`
	TLS    struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	Admin struct {
		Listen    string `yaml:"listen"`
		TokenFile string `yaml:"token_file"`
	} `yaml:"admin"`
	StateFile      string   `yaml:"state_file"`
	TrustedProxies []string `yaml:"trusted_proxies,omitempty"`
	Policy         string   `yaml:"policy,omitempty"`
	HealthCheck    struct {
		Path     string `yaml:"path"`
		Interval string `yaml:"interval"`
		Timeout  string `yaml:"timeout"`
		Rise     int    `yaml:"rise"`
		Fall     int    `yaml:"fall"`
	} `yaml:"health_check"`
	Proxy struct {
		DialTimeout   string  `yaml:"dial_timeout"`
		PerTryTimeout string  `yaml:"per_try_timeout"`
		MaxRetries    *int    `yaml:"max_retries,omitempty"`
		RetryBudget   float64 `yaml:"retry_budget,omitempty"`
	} `yaml:"proxy"`
	DrainTimeout string      `yaml:"drain_timeout"`
	Backends     []lbBackend `yaml:"backends"`
}

type lbBackend struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
}

// lbConfigYAML renders the lb config file.
func lbConfigYAML(o LBOptions, certFile, keyFile, tokenFile, stateFile string, backends []lbBackend) ([]byte, error) {
	var c lbFile
	c.Listen = o.Listen
	c.TLS.CertFile, c.TLS.KeyFile = certFile, keyFile
	c.Admin.Listen, c.Admin.TokenFile = o.AdminListen, tokenFile
	c.StateFile = stateFile
	c.TrustedProxies = o.TrustedProxies
	c.Policy = o.Policy
	c.HealthCheck.Path = "/healthz"
	c.HealthCheck.Interval = o.HealthInterval.String()
	c.HealthCheck.Timeout = o.HealthTimeout.String()
	c.HealthCheck.Rise, c.HealthCheck.Fall = o.Rise, o.Fall
	c.Proxy.DialTimeout = o.DialTimeout.String()
	c.Proxy.PerTryTimeout = o.PerTryTimeout.String()
	c.Proxy.MaxRetries = o.MaxRetries
	c.Proxy.RetryBudget = o.RetryBudget
	c.DrainTimeout = o.DrainTimeout.String()
	c.Backends = backends
	b, err := yaml.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("render lb config: %w", err)
	}
	return b, nil
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// freePort finds a loopback TCP port that is free right now, by binding 127.0.0.1:0
// and closing it. Another process may take it before the app binds it (a small race
// that the fleet accepts so that a restarted app gets the same address, which lb's
// config names).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// baseEnv is the part of the fleet's own environment its processes inherit.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}
