package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"outrigger/internal/lbconfig"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usageError is a bad command line or a bad config: lb exits 2 so that
// systemd's RestartPreventExitStatus=2 does not restart it in a loop.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// exitCode prints err (if any) to stderr and returns the process exit status:
// 0 on success, 2 for usage and config errors, 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "lb:", err)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

const usageText = `Usage: lb COMMAND [flags] [args]

Commands:
  serve -config FILE             run the load balancer
  validate -config FILE          check a config file and its token file; report every problem
                                 (-token-file F: check F, e.g. before lb.service's credential exists)
  backends [-json]               list backends
  drain [-wait] NAME             stop sending new requests to a backend
  enable NAME                    put a drained backend back into rotation
  add NAME URL                   add a backend (until the next reload)
  remove NAME                    drain, wait and remove a backend
  rollout [flags] -- CMD ARGS... replace every backend, one at a time
  ready [flags]                  exit 0 if this lb's /readyz says ready, else 1 (keepalived's check)
  reload [-config FILE]          make the running lb re-read its config file and report the result
  version                        print the version (also: lb -version)

The admin commands take -admin URL (repeatable: the same operation on every lb
of a pair) and -token-file FILE, or the environment: LB_ADMIN (one URL, or
several separated by commas) and LB_ADMIN_TOKEN_FILE. A mutating command goes
to every lb named, and names each lb that did not take it (exit status 1).
Flags come before arguments. Run "lb COMMAND -h" for a command's flags.
`

// run is lb's whole program: main only adds the signals and the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, getenv, stdout, stderr, serveHooks{})
}

// runWith is run with test hooks for serve.
func runWith(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, hooks serveHooks) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usageText)
		return usagef("no command given")
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr, hooks)
	case "validate":
		return runValidate(rest, stdout, stderr)
	case "backends":
		return runBackends(ctx, rest, getenv, stdout, stderr)
	case "drain":
		return runDrain(ctx, rest, getenv, stdout, stderr)
	case "enable":
		return runEnable(ctx, rest, getenv, stdout, stderr)
	case "add":
		return runAdd(ctx, rest, getenv, stdout, stderr)
	case "remove":
		return runRemove(ctx, rest, getenv, stdout, stderr)
	case "rollout":
		return runRollout(ctx, rest, getenv, stdout, stderr)
	case "ready":
		return runReady(ctx, rest, getenv, stdout, stderr)
	case "reload":
		return runReload(ctx, rest, getenv, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "lb", version)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	fmt.Fprint(stderr, usageText)
	return usagef("unknown command %q", cmd)
}

// newFlagSet returns a FlagSet for one subcommand. Its usage goes to stdout when asked
// for with -h (as `lb help` does), to stderr after a bad flag (see parseFlags).
func newFlagSet(name, argsUsage string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("lb "+name, flag.ContinueOnError)
	fs.SetOutput(&flagOutput{stdout: stdout, stderr: stderr})
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: lb %s [flags] %s\n\nFlags:\n", name, argsUsage)
		fs.PrintDefaults()
	}
	return fs
}

// flagOutput is a FlagSet's output: stderr, or stdout while -h's usage is printed.
type flagOutput struct {
	stdout, stderr io.Writer
	help           bool
}

func (o *flagOutput) Write(p []byte) (int, error) {
	if o.help {
		return o.stdout.Write(p)
	}
	return o.stderr.Write(p)
}

// parseFlags parses args; a flag error is a usage error (the error and the usage on
// stderr), -h is flag.ErrHelp (the usage on stdout).
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage := fs.Usage
	fs.Usage = func() {} // printed below, once it is known where to
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		if o, ok := fs.Output().(*flagOutput); ok {
			o.help = true
			defer func() { o.help = false }()
		}
		usage()
		return err
	case err != nil:
		usage()
		return &usageError{err: err}
	}
	return nil
}

// runValidate loads and validates a config file and its token file, and
// prints every problem on a line of its own: "FILE: key.path: problem".
// With -token-file, that file is checked in place of admin.token_file: on a
// VM where the token reaches lb as a systemd credential, validate can check
// the source (/etc/lb/admin-token) before the first start.
func runValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate", "", stdout, stderr)
	path := fs.String("config", "", "config file (YAML)")
	tokenFile := fs.String("token-file", "", "check this token file instead of admin.token_file (e.g. /etc/lb/admin-token,\n"+
		"the source of lb.service's credential, which exists only while lb runs)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" || fs.NArg() > 0 {
		fs.Usage()
		return usagef("validate: -config FILE is required and takes no arguments")
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		return &usageError{err: fmt.Errorf("read config: %w", err)}
	}
	cfg, err := lbconfig.Parse(data)
	if err == nil {
		// serve and reload refuse a token file that is missing, empty, readable by
		// others or a placeholder.
		tf := cfg.Admin.TokenFile
		if *tokenFile != "" {
			tf = *tokenFile
		}
		if _, terr := lbconfig.ReadToken(tf); terr != nil {
			err = fmt.Errorf("admin.token_file: %w", terr)
		}
	}
	if err != nil {
		for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
			fmt.Fprintf(stdout, "%s: %s\n", *path, line)
		}
		return &usageError{err: fmt.Errorf("%s: invalid", *path)}
	}
	if *tokenFile != "" && *tokenFile != cfg.Admin.TokenFile {
		fmt.Fprintf(stdout, "%s: ok (admin token checked in %s; lb reads it at %s)\n", *path, *tokenFile, cfg.Admin.TokenFile)
		return nil
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}
