package main

import (
	"context"
	"io"
	"time"

	"outrigger/internal/admin"
	"outrigger/internal/rollout"
)

// runRollout is `lb rollout [flags] -- CMD ARGS...`: replace every backend,
// one at a time, through the admin API of every lb given.
func runRollout(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rollout", "-- CMD ARGS...", stdout, stderr)
	af := &adminFlags{}
	af.register(fs)
	var opts rollout.Options
	var verbose bool
	fs.IntVar(&opts.MaxUnavailable, "max-unavailable", 1, "backends out of rotation at once (only 1 is supported)")
	fs.StringVar(&opts.ExpectVersion, "expect-version", "", "wait until each backend's /healthz reports this version before enabling it")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "print the plan and change nothing")
	fs.DurationVar(&opts.DrainTimeout, "drain-timeout", rollout.DefaultDrainTimeout, "longest wait for in_flight 0 after a drain; then go on and report the requests cut")
	fs.IntVar(&opts.Rise, "rise", rollout.DefaultRise, "passing health checks after CMD returned before a backend is enabled (the lb's health_check.rise)")
	fs.DurationVar(&opts.HealthTimeout, "timeout", rollout.DefaultHealthTimeout, "per backend: longest wait for those checks (and for another healthy backend before a drain)")
	fs.BoolVar(&verbose, "v", false, "copy CMD's output to stderr as it runs (it is always kept for a failure report)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opts.Command = fs.Args()
	if len(opts.Command) == 0 {
		fs.Usage()
		return usagef("rollout: no command: lb rollout [flags] -- CMD ARGS...")
	}
	if opts.MaxUnavailable != 1 {
		return usagef("rollout: -max-unavailable %d: only 1 is supported", opts.MaxUnavailable)
	}
	if opts.DrainTimeout <= 0 || opts.HealthTimeout <= 0 || opts.Rise <= 0 {
		return usagef("rollout: -drain-timeout, -timeout and -rise must be positive")
	}
	if verbose {
		opts.CommandOutput = stderr
	}
	opts.Poll = 250 * time.Millisecond
	targets, err := af.clients(getenv)
	if err != nil {
		return err
	}
	clients := make([]*admin.Client, len(targets))
	for i, t := range targets {
		clients[i] = t.client
	}
	return rollout.Run(ctx, clients, opts, stdout, stderr)
}
