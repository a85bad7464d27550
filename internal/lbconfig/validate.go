package lbconfig

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// FieldError is one problem in a configuration, with the key path it is at
// (e.g. "backends[1].url").
type FieldError struct {
	Path string
	Msg  string
}

// Error is "path: message".
func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// FieldErrors returns every *FieldError inside err (as joined by Validate),
// in order.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9._-]{1,64}$`)
	domainRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)
	hstsRE   = regexp.MustCompile(`(?i)(^|;)\s*max-age=\d+\s*(;|$)`)
)

// validator collects problems.
type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks the whole configuration and reports every problem at once:
// the result is errors.Join of one *FieldError per problem (see FieldErrors),
// or nil.
func (c *Config) Validate() error {
	v := &validator{}

	v.listen("listen", c.Listen, false)
	if c.HTTPListen != "" {
		v.listen("http_listen", c.HTTPListen, false)
		if c.TLS == nil {
			v.add("http_listen", "needs tls (without tls, listen already serves plain HTTP)")
		}
	}
	c.validateTLS(v)
	c.validateAdmin(v)
	v.sameAddr(c)

	for i, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(p); err == nil {
			continue
		}
		v.add(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not a CIDR or IP address", p)
	}

	if !validPolicy(c.Policy) {
		v.add("policy", "unknown %q (want round_robin, least_conn or p2c)", c.Policy)
	}

	hc := c.HealthCheck
	if !strings.HasPrefix(hc.Path, "/") {
		v.add("health_check.path", "must start with /")
	} else if u, err := url.ParseRequestURI(hc.Path); err != nil || u.Host != "" {
		v.add("health_check.path", "%q is not a request path", hc.Path)
	}
	v.positive("health_check.interval", hc.Interval)
	v.positive("health_check.timeout", hc.Timeout)
	if hc.Interval > 0 && hc.Timeout > hc.Interval {
		v.add("health_check.timeout", "must be <= interval (%s)", hc.Interval)
	}
	if hc.Rise < 1 {
		v.add("health_check.rise", "must be >= 1")
	}
	if hc.Fall < 1 {
		v.add("health_check.fall", "must be >= 1")
	}

	p := c.Proxy
	v.positive("proxy.dial_timeout", p.DialTimeout)
	v.positive("proxy.per_try_timeout", p.PerTryTimeout)
	if p.MaxRetries < 0 {
		v.add("proxy.max_retries", "must be >= 0")
	}
	if !(p.RetryBudget >= 0 && p.RetryBudget <= 1) {
		v.add("proxy.retry_budget", "must be between 0 and 1")
	}
	if p.RetryBodyBytes < 0 {
		v.add("proxy.retry_body_bytes", "must be >= 0")
	}
	if p.MaxInFlightPerBackend < 0 {
		v.add("proxy.max_in_flight_per_backend", "must be >= 0 (0 = unlimited)")
	}

	l := c.Limits
	if l.MaxConns < 1 {
		v.add("limits.max_conns", "must be >= 1")
	}
	if l.MaxHeaderBytes < 1024 {
		v.add("limits.max_header_bytes", "must be >= 1024")
	}
	v.positive("limits.read_header_timeout", l.ReadHeaderTimeout)
	v.positive("limits.body_read_timeout", l.BodyReadTimeout)
	v.positive("limits.write_timeout", l.WriteTimeout)
	v.positive("limits.idle_timeout", l.IdleTimeout)
	if c.ShutdownDelay < 0 {
		v.add("shutdown_delay", "must be >= 0 (a duration like \"5s\"; 0 = stop accepting at once)")
	}
	v.positive("drain_timeout", c.DrainTimeout)

	seen := map[string]int{}
	for i, b := range c.Backends {
		path := fmt.Sprintf("backends[%d]", i)
		if err := ValidateBackendName(b.Name); err != nil {
			v.add(path+".name", "%v", err)
		} else if j, dup := seen[b.Name]; dup {
			v.add(path+".name", "duplicate name %q (also backends[%d])", b.Name, j)
		} else {
			seen[b.Name] = i
		}
		if err := ValidateBackendURL(b.URL); err != nil {
			v.add(path+".url", "%v", err)
		}
	}
	return errors.Join(v.errs...)
}

func (c *Config) validateTLS(v *validator) {
	t := c.TLS
	if t == nil {
		return
	}
	files := t.CertFile != "" || t.KeyFile != ""
	switch {
	case files && t.ACME != nil:
		v.add("tls", "set either cert_file+key_file or acme, not both")
	case !files && t.ACME == nil:
		v.add("tls", "set either cert_file+key_file or acme")
	case files:
		if t.CertFile == "" {
			v.add("tls.cert_file", "required with key_file")
		}
		if t.KeyFile == "" {
			v.add("tls.key_file", "required with cert_file")
		}
	}
	if t.HSTS != "" && !hstsRE.MatchString(t.HSTS) {
		v.add("tls.hsts", "%q has no max-age=SECONDS directive", t.HSTS)
	}
	a := t.ACME
	if a == nil {
		return
	}
	if len(a.Domains) == 0 {
		v.add("tls.acme.domains", "at least one domain is required")
	}
	seen := map[string]bool{}
	for i, d := range a.Domains {
		path := fmt.Sprintf("tls.acme.domains[%d]", i)
		switch {
		case !domainRE.MatchString(d) || len(d) > 253:
			v.add(path, "%q is not a lower-case DNS name with a dot (no wildcard, port or IP)", d)
		case isIP(d):
			v.add(path, "%q is an IP address; ACME certificates need a DNS name", d)
		case seen[d]:
			v.add(path, "duplicate domain %q", d)
		}
		seen[d] = true
	}
	if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t\r\n,")) {
		v.add("tls.acme.email", "%q is not an email address", a.Email)
	}
	if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
		v.add("tls.acme.directory_url", "%q must be an https URL", a.DirectoryURL)
	}
	if a.CacheDir == "" {
		v.add("tls.acme.cache_dir", "required")
	}
	if a.CacheDatabaseURL != "" {
		if !strings.HasPrefix(a.CacheDatabaseURL, "postgres://") && !strings.HasPrefix(a.CacheDatabaseURL, "postgresql://") {
			v.add("tls.acme.cache_database_url", "must be a postgres:// URL")
		}
		if a.CacheKeyFile == "" {
			v.add("tls.acme.cache_key_file", "required with cache_database_url (encrypts private keys in the database)")
		}
	} else if a.CacheKeyFile != "" {
		v.add("tls.acme.cache_key_file", "only used with cache_database_url")
	}
	if a.RenewBefore < 0 {
		v.add("tls.acme.renew_before", "must be >= 0 (0 = 30 days)")
	}
}

func (c *Config) validateAdmin(v *validator) {
	a := c.Admin
	v.listen("admin.listen", a.Listen, true)
	if a.Listen != "" && ValidateListenAddr(a.Listen) == nil && a.CertFile == "" && !IsLoopback(a.Listen) {
		v.add("admin.listen", "%q is not loopback: set admin.cert_file and admin.key_file (HTTPS)", a.Listen)
	}
	if a.TokenFile == "" {
		v.add("admin.token_file", "required")
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		v.add("admin", "set both cert_file and key_file, or neither")
	}
}

// sameAddr reports listeners that share an address.
func (v *validator) sameAddr(c *Config) {
	type l struct{ path, addr string }
	ls := []l{{"listen", c.Listen}, {"http_listen", c.HTTPListen}, {"admin.listen", c.Admin.Listen}}
	for i := range ls {
		for j := i + 1; j < len(ls); j++ {
			a, b := ls[i], ls[j]
			if a.addr == "" || b.addr == "" {
				continue
			}
			_, pa, _ := net.SplitHostPort(a.addr)
			_, pb, _ := net.SplitHostPort(b.addr)
			if a.addr == b.addr && pa != "0" && pb != "0" {
				v.add(b.path, "same address as %s (%s)", a.path, a.addr)
			}
		}
	}
}

func (v *validator) listen(path, addr string, required bool) {
	if addr == "" {
		if required {
			v.add(path, "required")
		} else {
			v.add(path, "must not be empty")
		}
		return
	}
	if err := ValidateListenAddr(addr); err != nil {
		v.add(path, "%v", err)
	}
}

func (v *validator) positive(path string, d time.Duration) {
	if d <= 0 {
		v.add(path, "must be > 0 (a duration like \"2s\")")
	}
}

func validPolicy(p string) bool {
	for _, q := range Policies {
		if p == q {
			return true
		}
	}
	return false
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// ValidateListenAddr checks a listen address: "host:port" or ":port", with a
// numeric port 0-65535 and a host that is empty, an IP or a name.
func ValidateListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has a bad port", addr)
	}
	if host == "" || isIP(host) {
		return nil
	}
	if strings.ContainsAny(host, " /?#@[]") {
		return fmt.Errorf("%q has a bad host", addr)
	}
	return nil
}

// IsLoopback reports whether a listen address is on loopback only:
// 127.0.0.0/8, ::1 or localhost. An empty host (all interfaces) is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// ValidateBackendName checks a backend name: [a-z0-9._-]{1,64}.
func ValidateBackendName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%q must match [a-z0-9._-]{1,64}", name)
	}
	return nil
}

// ValidateBackendURL checks a backend URL: http or https, host:port, and no
// path, query, fragment or userinfo.
func ValidateBackendURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be http or https")
	case u.User != nil:
		return errors.New("must not contain userinfo")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("must have a host")
	case u.Port() == "":
		return errors.New("must have a port (host:port)")
	case u.Path != "" && u.Path != "/":
		return errors.New("must not have a path")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("must not have a query")
	case u.Fragment != "":
		return errors.New("must not have a fragment")
	}
	if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
		return errors.New("has a bad port")
	}
	return nil
}
