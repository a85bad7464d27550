// Command lab starts Outrigger's whole highly available fleet on one machine, in network
// namespaces (internal/lab, internal/labfleet), for breaking by hand: two lbs with
// keepalived sharing a virtual IP, three apps, and PostgreSQL as a pg_auto_failover
// formation (monitor, db-1, db-2). It links the machine to the lab's switch, prints the
// URL a browser or curl can use, and reads commands from stdin (help lists them) while a
// status line says what is up. Ctrl-C, quit or the end of stdin stops and removes it all.
//
// It needs root (network namespaces), keepalived and pg_auto_failover; `make lab` builds
// the binaries and runs it:
//
//	lab -lb bin/lb -app bin/app -app-next bin/app-next
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.lb, "lb", "bin/lb", "the lb binary")
	flag.StringVar(&o.app, "app", "bin/app", "the app binary the fleet starts with")
	flag.StringVar(&o.appNext, "app-next", "bin/app-next", "the app binary the rollout command installs (then -app again, in turn)")
	flag.IntVar(&o.apps, "apps", 3, "app hosts")
	flag.DurationVar(&o.statusEvery, "status-every", time.Second, "how often the status line is refreshed (printed when it changes)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdin, os.Stdout, o); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

type options struct {
	lb, app, appNext string
	apps             int
	statusEvery      time.Duration
}

// absBinaries makes the binaries' paths absolute, since the lab starts each process in its
// host's own directory, and checks that they exist.
func (o *options) absBinaries() error {
	for _, b := range []*string{&o.lb, &o.app, &o.appNext} {
		abs, err := filepath.Abs(*b)
		if err != nil {
			return fmt.Errorf("binary %s: %w", *b, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("binary %s: %w (make lab builds them)", *b, err)
		}
		*b = abs
	}
	return nil
}

// run starts the lab and the fleet, serves the menu on in until quit, the end of in or
// ctx's end, and removes everything before it returns.
func run(ctx context.Context, in io.Reader, out io.Writer, o options) (err error) {
	if err := o.absBinaries(); err != nil {
		return err
	}
	p := newPrinter(out)
	p.say("starting the lab: 2 lbs + keepalived, %d apps, pg_auto_failover monitor + 2 data nodes (about 30 s)...", o.apps)
	s, err := startLab(ctx, o)
	if s != nil {
		defer func() {
			p.say("stopping: removing every process, namespace and file of the lab...")
			if cerr := s.close(); cerr != nil && err == nil {
				err = cerr
			}
			p.say("stopped.")
		}()
	}
	if err != nil {
		return err
	}
	p.say("the fleet is up. From this machine (address %s on the lab's switch):", s.machine)
	p.say("  URL:    %s/", s.fleet.URL)
	p.say("  curl:   curl --cacert %s %s/healthz", s.fleet.CertFile(), s.fleet.URL)
	p.say("  browser: open %s/ and accept the self-signed certificate (it names %s)", s.fleet.URL, s.fleet.VIP)
	p.say("%s", helpText(s))
	return s.serve(ctx, in, p, o.statusEvery)
}
