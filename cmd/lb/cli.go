package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"outrigger/internal/admin"
	"outrigger/internal/lbconfig"
)

// adminList is the repeatable -admin flag.
type adminList []string

func (a *adminList) String() string { return strings.Join(*a, ",") }

func (a *adminList) Set(v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return errors.New("empty admin URL")
	}
	u, err := parseAdminURL(v)
	if err != nil {
		return err
	}
	*a = append(*a, u)
	return nil
}

// adminFlags are the flags every admin command takes.
type adminFlags struct {
	admins         adminList
	tokenFile      string
	caFile         string
	connectTimeout time.Duration
	callTimeout    time.Duration
}

func (f *adminFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.admins, "admin", "admin API URL, e.g. http://127.0.0.1:9000 (repeatable: every lb of a pair; default $LB_ADMIN, URLs separated by commas)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the admin token (default $LB_ADMIN_TOKEN_FILE)")
	fs.StringVar(&f.caFile, "ca-file", "", "extra CA (PEM) to trust for an HTTPS admin API")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", admin.DefaultConnectTimeout,
		"give up on an lb that does not accept the connection (TCP and TLS) within this long")
	fs.DurationVar(&f.callTimeout, "call-timeout", admin.DefaultCallTimeout,
		"give up on an lb that does not answer one call within this long (long waits are many calls)")
}

// target is one lb's admin API.
type target struct {
	url    string
	client *admin.Client
}

// clients resolves the flags and environment into one Client per lb.
func (f *adminFlags) clients(getenv func(string) string) ([]target, error) {
	urls := []string(f.admins)
	if len(urls) == 0 {
		env, err := parseAdminEnv(getenv("LB_ADMIN"))
		if err != nil {
			return nil, &usageError{err: err}
		}
		urls = env
	}
	if len(urls) == 0 {
		return nil, usagef("no admin API: pass -admin URL or set LB_ADMIN")
	}
	if err := noDuplicates(urls); err != nil {
		return nil, &usageError{err: err}
	}
	tokenFile := f.tokenFile
	if tokenFile == "" {
		tokenFile = getenv("LB_ADMIN_TOKEN_FILE")
	}
	if tokenFile == "" {
		return nil, usagef("no admin token: pass -token-file FILE or set LB_ADMIN_TOKEN_FILE")
	}
	token, err := lbconfig.ReadToken(tokenFile)
	if err != nil {
		return nil, &usageError{err: err}
	}
	if f.connectTimeout <= 0 || f.callTimeout <= 0 {
		return nil, usagef("-connect-timeout and -call-timeout must be positive")
	}
	var tlsConf *tls.Config
	if f.caFile != "" {
		pool, err := rootPool("-ca-file", f.caFile)
		if err != nil {
			return nil, &usageError{err: err}
		}
		tlsConf = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	hc := admin.NewHTTPClient(f.connectTimeout, tlsConf)
	out := make([]target, 0, len(urls))
	for _, u := range urls {
		out = append(out, target{url: u, client: &admin.Client{BaseURL: u, Token: token, HTTP: hc,
			ConnectTimeout: f.connectTimeout, CallTimeout: f.callTimeout}})
	}
	return out, nil
}

// rootPool returns the system's root CAs plus the certificates in each PEM file; what
// names the files in errors (a flag or a config key).
func rootPool(what string, files ...string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s %s: no PEM certificate in it", what, f)
		}
	}
	return pool, nil
}

// eachLB runs op on every lb, each one even after another failed, reports each failure on a
// line of its own ("lb URL: WHAT: FAILED: why"), and fails if any did, naming those lbs.
func eachLB(targets []target, what string, stderr io.Writer, op func(t target) error) error {
	var failed []string
	for _, t := range targets {
		if err := op(t); err != nil {
			fmt.Fprintf(stderr, "lb %s: %s: FAILED: %s\n", t.url, what, describe(err))
			failed = append(failed, t.url)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s: failed on %d of %d lb(s): %s", what, len(failed), len(targets), strings.Join(failed, ", "))
	}
	return nil
}

// adminCommand parses an admin command's flags, checks its argument count
// and resolves the flags and environment into one client per lb.
func adminCommand(name, argsUsage string, nargs int, args []string, getenv func(string) string, stdout, stderr io.Writer,
	extra func(fs *flag.FlagSet)) ([]target, []string, error) {
	return adminCommandWith(name, argsUsage, nargs, args, getenv, stdout, stderr, extra, nil)
}

// adminCommandWith is adminCommand with prepare, which may fill in admin
// flags after parsing and before they are resolved.
func adminCommandWith(name, argsUsage string, nargs int, args []string, getenv func(string) string, stdout, stderr io.Writer,
	extra func(fs *flag.FlagSet), prepare func(*adminFlags) error) ([]target, []string, error) {
	fs := newFlagSet(name, argsUsage, stdout, stderr)
	af := &adminFlags{}
	af.register(fs)
	if extra != nil {
		extra(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() != nargs {
		fs.Usage()
		return nil, nil, usagef("%s: want %s (flags first), got %d argument(s)", name, argsUsage, fs.NArg())
	}
	if prepare != nil {
		if err := prepare(af); err != nil {
			return nil, nil, err
		}
	}
	targets, err := af.clients(getenv)
	if err != nil {
		return nil, nil, err
	}
	return targets, fs.Args(), nil
}

func runBackends(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var asJSON bool
	targets, _, err := adminCommand("backends", "", 0, args, getenv, stdout, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON (an array; with several -admin, an object keyed by admin URL)")
	})
	if err != nil {
		return err
	}
	all := map[string][]admin.Backend{}
	err = eachLB(targets, "list backends", stderr, func(t target) error {
		list, err := t.client.Backends(ctx)
		if err != nil {
			return err
		}
		all[t.url] = list
		if asJSON {
			return nil
		}
		if len(targets) > 1 {
			fmt.Fprintf(stdout, "== %s\n", t.url)
		}
		printTable(stdout, list, time.Now())
		return nil
	})
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		var v any = all
		if len(targets) == 1 {
			v = all[targets[0].url]
		}
		if encErr := enc.Encode(v); encErr != nil && err == nil {
			err = encErr
		}
	}
	return err
}

// printTable writes backends as an aligned table.
func printTable(w io.Writer, list []admin.Backend, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tHEALTHY\tIN_FLIGHT\tUPGRADED\tCHECKS_OK\tLAST_CHECK\tVERSION\tREQUESTS\tFAILURES\tURL\tLAST_ERROR")
	for _, b := range list {
		last := "-"
		if !b.LastCheck.IsZero() {
			last = now.Sub(b.LastCheck).Round(100*time.Millisecond).String() + " ago"
		}
		healthy := "no"
		if b.Healthy {
			healthy = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n",
			b.Name, b.State, healthy, b.InFlight, b.Upgraded, b.ChecksOK, last,
			orDash(b.Version), b.Requests, b.Failures, b.URL, orDash(b.LastError))
	}
	tw.Flush()
}

// orDash returns s on one line ("-" when empty), control characters blanked.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func runDrain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var wait bool
	var timeout time.Duration
	targets, rest, err := adminCommand("drain", "NAME", 1, args, getenv, stdout, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&wait, "wait", false, "wait until the backend has no request in flight")
		fs.DurationVar(&timeout, "timeout", lbconfig.DefaultDrainTimeout, "with -wait: give up after this long")
	})
	if err != nil {
		return err
	}
	name := rest[0]
	var drained []target
	err = eachLB(targets, "drain "+name, stderr, func(t target) error {
		b, err := t.client.Drain(ctx, name)
		if err != nil {
			return err
		}
		drained = append(drained, t)
		fmt.Fprintf(stdout, "%s: %s is %s (in_flight %d)\n", t.url, b.Name, b.State, b.InFlight)
		return nil
	})
	if !wait || len(drained) == 0 {
		return err
	}
	// Wait on every lb that took the drain, even when another did not: its requests in
	// flight are what the operator waits for.
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	waitErr := eachLB(drained, "wait for "+name+" to be idle", stderr, func(t target) error {
		b, err := t.client.WaitIdle(wctx, name, 100*time.Millisecond)
		if err != nil {
			return fmt.Errorf("in_flight %d: %w", b.InFlight, err)
		}
		fmt.Fprintf(stdout, "%s: %s is idle after %s\n", t.url, name, time.Since(start).Round(time.Millisecond))
		return nil
	})
	return errors.Join(err, waitErr)
}

func runEnable(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	targets, rest, err := adminCommand("enable", "NAME", 1, args, getenv, stdout, stderr, nil)
	if err != nil {
		return err
	}
	return eachLB(targets, "enable "+rest[0], stderr, func(t target) error {
		b, err := t.client.Enable(ctx, rest[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s is %s (healthy %t)\n", t.url, b.Name, b.State, b.Healthy)
		return nil
	})
}

func runAdd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	targets, rest, err := adminCommand("add", "NAME URL", 2, args, getenv, stdout, stderr, nil)
	if err != nil {
		return err
	}
	return eachLB(targets, "add "+rest[0], stderr, func(t target) error {
		b, err := t.client.Add(ctx, rest[0], rest[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: added %s %s (until the next reload: add it to the config file too)\n", t.url, b.Name, b.URL)
		return nil
	})
}

func runRemove(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var drain time.Duration
	targets, rest, err := adminCommand("remove", "NAME", 1, args, getenv, stdout, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&drain, "drain-timeout", lbconfig.DefaultDrainTimeout,
			"the lbs' drain_timeout: each drains the backend up to this long before it answers")
	})
	if err != nil {
		return err
	}
	for _, t := range targets {
		t.client.DrainTimeout = drain
	}
	return eachLB(targets, "remove "+rest[0], stderr, func(t target) error {
		if err := t.client.Remove(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: removed %s (until the next reload: remove it from the config file too)\n", t.url, rest[0])
		return nil
	})
}
