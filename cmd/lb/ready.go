package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"outrigger/internal/admin"
	"outrigger/internal/lbconfig"
)

// defaultReadyTimeout bounds `lb ready`. keepalived runs the check every second or so and
// must have its answer before the next run; on loopback lb answers in well under a
// millisecond, so half a second leaves room for a loaded machine or a GC pause, while a
// frozen lb (its kernel still completes the TCP handshake, nothing answers) is found out
// within half a second of each run.
const defaultReadyTimeout = 500 * time.Millisecond

// defaultReadyAdmin is the admin listener `lb ready` asks when told nothing else
// (lbconfig.DefaultAdminListen).
const defaultReadyAdmin = "http://127.0.0.1:9000"

// runReady is `lb ready`, keepalived's check of this lb: it asks GET /readyz (no token) and
// exits 0 when the answer is 200 "ready", 1 otherwise (503 naming why, no answer within
// -timeout, connection refused), 2 on bad usage. It prints one line saying which.
func runReady(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ready", "", stdout, stderr)
	adminURL := fs.String("admin", "", "this lb's admin API URL (default: $LB_ADMIN if it names one lb, else "+defaultReadyAdmin+")")
	cfgPath := fs.String("config", "", "take the admin URL from lb's config file instead: admin.listen, and https with admin.cert_file")
	caFile := fs.String("ca-file", "", "extra CA (PEM) to trust for an HTTPS admin API")
	timeout := fs.Duration("timeout", defaultReadyTimeout, "not ready if no answer within this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return usagef("ready: takes no arguments")
	}
	if *timeout <= 0 {
		return usagef("ready: -timeout must be positive")
	}
	if *adminURL != "" && *cfgPath != "" {
		return usagef("ready: give -admin or -config, not both")
	}
	var cas []string
	if *caFile != "" {
		cas = append(cas, *caFile)
	}
	base, err := readyTarget(*adminURL, *cfgPath, getenv, &cas)
	if err != nil {
		return &usageError{err: err}
	}
	tr := &http.Transport{DisableKeepAlives: true} // no proxy: this is a nearby lb
	if len(cas) > 0 {
		pool, err := rootPool("CA file", cas...)
		if err != nil {
			return &usageError{err: err}
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	defer tr.CloseIdleConnections()
	c := &admin.Client{BaseURL: base, HTTP: &http.Client{Transport: tr}}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	ready, status, err := c.Ready(ctx)
	switch {
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s not ready: no answer within %s", base, *timeout)
	case err != nil:
		return fmt.Errorf("%s not ready: %s", base, describe(err))
	case !ready:
		return fmt.Errorf("%s not ready: %s", base, status)
	}
	fmt.Fprintf(stdout, "%s ready\n", base)
	return nil
}

// readyTarget picks the admin URL `lb ready` asks: -admin; else admin.listen from -config
// (https when admin.cert_file is set, whose certificates it then trusts: appended to cas);
// else LB_ADMIN when it names exactly one lb; else the default. LB_ADMIN naming several
// lbs (the CLI's setting for a pair) does not say which one is this one: the default then.
func readyTarget(flagURL, cfgPath string, getenv func(string) string, cas *[]string) (string, error) {
	switch {
	case flagURL != "":
		return parseAdminURL(flagURL)
	case cfgPath != "":
		return adminURLFromConfig(cfgPath, cas)
	}
	env, err := parseAdminEnv(getenv("LB_ADMIN"))
	if err != nil {
		return "", err
	}
	if len(env) == 1 {
		return env[0], nil
	}
	return defaultReadyAdmin, nil
}

// adminURLFromConfig reads the admin block of lb's config file. Only that block is read,
// and leniently: a config being edited must not fail the check of a running lb (lb
// itself refuses a bad file at reload and keeps running). A listen address without a
// host, or on every interface, is asked on 127.0.0.1.
func adminURLFromConfig(path string, cas *[]string) (string, error) {
	a, err := readAdminBlock(path)
	if err != nil {
		return "", err
	}
	u, err := adminURLOf(a)
	if err != nil {
		return "", fmt.Errorf("config %s: %w", path, err)
	}
	if a.CertFile != "" {
		*cas = append(*cas, a.CertFile)
	}
	return u, nil
}

// readAdminBlock returns the admin block of lb's config file, read leniently (see
// adminURLFromConfig), with DESIGN's default address when it names none.
func readAdminBlock(path string) (lbconfig.Admin, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return lbconfig.Admin{}, fmt.Errorf("read config: %w", err)
	}
	var file struct {
		Admin lbconfig.Admin `yaml:"admin"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		return lbconfig.Admin{}, fmt.Errorf("config %s: %w", path, err)
	}
	if file.Admin.Listen == "" {
		file.Admin.Listen = lbconfig.DefaultAdminListen
	}
	return file.Admin, nil
}

// adminURLOf is the URL at which this host reaches the admin listener a: https with
// cert_file; no host, or every interface, is asked on 127.0.0.1.
func adminURLOf(a lbconfig.Admin) (string, error) {
	host, port, err := net.SplitHostPort(a.Listen)
	if err != nil {
		return "", fmt.Errorf("admin.listen %q: %w", a.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	if a.CertFile != "" {
		scheme = "https"
	}
	return parseAdminURL(scheme + "://" + net.JoinHostPort(host, port))
}
