// Package rollout replaces every backend behind one or more lbs, one at a time,
// through their admin APIs: drain, wait for in-flight requests, run a command
// that installs the new version, wait for fresh passing health checks, enable.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"outrigger/internal/admin"
)

// Defaults for the zero values of Options.
const (
	DefaultDrainTimeout  = 30 * time.Second
	DefaultRise          = 2
	DefaultHealthTimeout = 2 * time.Minute
	DefaultPoll          = 250 * time.Millisecond
	DefaultTailLines     = 20
)

// Options configures a rollout. Command is required; zero values of the rest
// take the defaults above.
type Options struct {
	// Command is the argv run once per backend (no shell). It gets
	// LB_BACKEND_NAME, LB_BACKEND_URL and LB_BACKEND_HOST in its environment.
	Command []string
	// MaxUnavailable is how many backends may be out at once. Only 1 is
	// supported; 0 means 1.
	MaxUnavailable int
	// ExpectVersion, if set, is the version each backend's health check must
	// report before it is enabled again.
	ExpectVersion string
	// DryRun prints the plan and changes nothing.
	DryRun bool
	// DrainTimeout bounds the wait for in_flight 0; past it the rollout goes on
	// and reports how many requests it cut.
	DrainTimeout time.Duration
	// Rise is how many passing checks stamped after the command returned a
	// backend needs before it is enabled (use the lb's health_check.rise).
	Rise int
	// HealthTimeout bounds, per backend, the wait for those checks, and the
	// wait for another healthy active backend before a drain.
	HealthTimeout time.Duration
	// Poll is the interval between admin API polls.
	Poll time.Duration
	// TailLines is how many of the command's last output lines a failure
	// report shows.
	TailLines int
	// Env is the command's base environment; nil means os.Environ(). Every
	// LB_ADMIN* and LB_BACKEND_* variable in it is dropped.
	Env []string
	// CommandOutput, if set, receives the command's combined output as it runs.
	CommandOutput io.Writer
}

func (o Options) withDefaults() (Options, error) {
	if len(o.Command) == 0 || o.Command[0] == "" {
		return o, errors.New("rollout: no command given (lb rollout [flags] -- CMD ARGS...)")
	}
	switch {
	case o.MaxUnavailable == 0:
		o.MaxUnavailable = 1
	case o.MaxUnavailable != 1:
		return o, fmt.Errorf("rollout: max unavailable %d: only 1 is supported", o.MaxUnavailable)
	}
	if o.DrainTimeout < 0 || o.Rise < 0 || o.HealthTimeout < 0 || o.Poll < 0 || o.TailLines < 0 {
		return o, errors.New("rollout: negative drain timeout, rise, health timeout, poll or tail lines")
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.Rise == 0 {
		o.Rise = DefaultRise
	}
	if o.HealthTimeout == 0 {
		o.HealthTimeout = DefaultHealthTimeout
	}
	if o.Poll == 0 {
		o.Poll = DefaultPoll
	}
	if o.TailLines == 0 {
		o.TailLines = DefaultTailLines
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	return o, nil
}

// target is one backend to replace, as the lbs agree on it.
type target struct {
	name, url, host string
	draining        bool // draining on at least one lb when the rollout started
}

// result is what happened to one backend.
type result struct {
	name     string
	done     bool
	drained  bool // left drained (the rollout stopped after draining it)
	cut      int64
	version  string
	duration time.Duration
}

// runner holds one rollout's state.
type runner struct {
	opts           Options
	lbs            []*admin.Client
	stdout, stderr io.Writer
	start          time.Time
	nameWidth      int
}

// Run replaces every backend that the lbs behind clients agree on, one at a
// time: it drains it on every lb, waits for in_flight 0 (going on at
// DrainTimeout), runs opts.Command, waits for opts.Rise passing checks stamped
// after the command returned (and ExpectVersion), and enables it on every lb.
// It never drains a backend unless another one is healthy and active on every
// lb. It prints one line per step to stdout and a summary at the end. On
// failure or when ctx is done it stops, leaves the current backend drained,
// prints a failed command's exit status and last output lines to stderr, and
// returns an error that says why.
func Run(ctx context.Context, clients []*admin.Client, opts Options, stdout, stderr io.Writer) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if len(clients) == 0 {
		return errors.New("rollout: no lb admin API given")
	}
	r := &runner{opts: opts, lbs: clients, stdout: stdout, stderr: stderr, start: time.Now()}
	targets, lists, err := r.discover(ctx)
	if err != nil {
		return err
	}
	for _, t := range targets {
		r.nameWidth = max(r.nameWidth, len(t.name))
	}
	startErr := r.canStart(targets, lists)
	if opts.DryRun {
		r.printPlan(targets, lists)
		if startErr != nil {
			return startErr
		}
		fmt.Fprintln(stdout, "dry run: nothing was changed")
		return nil
	}
	if startErr != nil {
		return startErr
	}
	fmt.Fprintf(stdout, "rollout: %d backend(s) on %d lb(s); command: %s\n", len(targets), len(clients), quoteArgs(opts.Command))

	results := make([]result, 0, len(targets))
	for i, t := range targets {
		res, err := r.replace(ctx, t, i == 0)
		results = append(results, res)
		if err != nil {
			r.summary(results, targets, err)
			return fmt.Errorf("rollout stopped at %s: %w", t.name, err)
		}
	}
	r.summary(results, targets, nil)
	return nil
}

// discover lists the backends on every lb, checks that the lists agree and
// orders them: backends already draining first, then the configured order.
func (r *runner) discover(ctx context.Context) ([]target, [][]admin.Backend, error) {
	lists := make([][]admin.Backend, len(r.lbs))
	for i, c := range r.lbs {
		list, err := c.Backends(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("rollout: lb %s: %w", c.BaseURL, err)
		}
		lists[i] = list
	}
	if err := agree(r.lbs, lists); err != nil {
		return nil, nil, err
	}
	var targets []target
	for _, b := range lists[0] {
		u, err := url.Parse(b.URL)
		if err != nil || u.Hostname() == "" {
			return nil, nil, fmt.Errorf("rollout: backend %s: bad URL %q", b.Name, b.URL)
		}
		t := target{name: b.Name, url: b.URL, host: u.Hostname()}
		for _, list := range lists {
			if find(list, b.Name).State == admin.StateDraining {
				t.draining = true
			}
		}
		targets = append(targets, t)
	}
	sort.SliceStable(targets, func(i, j int) bool { return targets[i].draining && !targets[j].draining })
	return targets, lists, nil
}

// agree checks that every lb has the same backends with the same URLs.
func agree(lbs []*admin.Client, lists [][]admin.Backend) error {
	if len(lists[0]) == 0 {
		return fmt.Errorf("rollout: lb %s has no backends", lbs[0].BaseURL)
	}
	first := map[string]string{}
	for _, b := range lists[0] {
		first[b.Name] = b.URL
	}
	for i := 1; i < len(lists); i++ {
		var diffs []string
		seen := map[string]bool{}
		for _, b := range lists[i] {
			seen[b.Name] = true
			u, ok := first[b.Name]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("%s only on %s", b.Name, lbs[i].BaseURL))
			case u != b.URL:
				diffs = append(diffs, fmt.Sprintf("%s is %s on %s but %s on %s", b.Name, u, lbs[0].BaseURL, b.URL, lbs[i].BaseURL))
			}
		}
		for _, b := range lists[0] {
			if !seen[b.Name] {
				diffs = append(diffs, fmt.Sprintf("%s missing on %s", b.Name, lbs[i].BaseURL))
			}
		}
		if len(diffs) > 0 {
			return fmt.Errorf("rollout: the lbs' backend lists differ: %s", strings.Join(diffs, "; "))
		}
	}
	return nil
}

func find(list []admin.Backend, name string) admin.Backend {
	for _, b := range list {
		if b.Name == name {
			return b
		}
	}
	return admin.Backend{}
}

// othersUp reports, for each lb, whether a backend other than name is active
// and healthy there; it returns a description of the first lb where none is.
func othersUp(lbs []*admin.Client, lists [][]admin.Backend, name string) (bool, string) {
	for i, list := range lists {
		up := false
		for _, b := range list {
			if b.Name != name && b.State == admin.StateActive && b.Healthy {
				up = true
				break
			}
		}
		if !up {
			return false, fmt.Sprintf("on lb %s no backend besides %s is healthy and active", lbs[i].BaseURL, name)
		}
	}
	return true, ""
}

// canStart refuses a rollout that would leave no healthy active backend.
func (r *runner) canStart(targets []target, lists [][]admin.Backend) error {
	if len(targets) < 2 {
		return fmt.Errorf("rollout: refusing to start: only %d backend(s); draining it would leave none to serve", len(targets))
	}
	if ok, why := othersUp(r.lbs, lists, targets[0].name); !ok {
		return fmt.Errorf("rollout: refusing to start: draining %s would leave no healthy active backend: %s", targets[0].name, why)
	}
	return nil
}

func (r *runner) printPlan(targets []target, lists [][]admin.Backend) {
	o := r.opts
	w := r.stdout
	lbs := make([]string, len(r.lbs))
	for i, c := range r.lbs {
		lbs[i] = c.BaseURL
	}
	fmt.Fprintf(w, "rollout plan (dry run): %d backend(s) on %d lb(s): %s\n", len(targets), len(r.lbs), strings.Join(lbs, ", "))
	fmt.Fprintf(w, "command: %s\n", quoteArgs(o.Command))
	for i, t := range targets {
		b := find(lists[0], t.name)
		health := "unhealthy"
		if b.Healthy {
			health = "healthy"
		}
		state := b.State
		if t.draining {
			state = "draining (deployed first, enabled after)"
		}
		fmt.Fprintf(w, "  %d. %-*s  %s  %s, %s, version %s\n", i+1, r.nameWidth, t.name, t.url, state, health, orNone(b.Version))
	}
	want := fmt.Sprintf("%d passing checks after it returns", o.Rise)
	if o.ExpectVersion != "" {
		want += fmt.Sprintf(" reporting version %s", o.ExpectVersion)
	}
	fmt.Fprintf(w, "each, one at a time (max unavailable %d): drain on every lb; wait for in_flight 0 (at most %s);\n", o.MaxUnavailable, o.DrainTimeout)
	fmt.Fprintf(w, "  run the command with LB_BACKEND_NAME, LB_BACKEND_URL, LB_BACKEND_HOST; wait for %s (at most %s); enable on every lb\n", want, o.HealthTimeout)
}

// replace runs the steps for one backend. first says that the start check
// already made sure another backend is up.
func (r *runner) replace(ctx context.Context, t target, first bool) (res result, err error) {
	res.name = t.name
	begin := time.Now()
	defer func() { res.duration = time.Since(begin) }()
	var drainedOn []string // the lbs on which this rollout drained t and has not enabled it again
	defer func() {
		res.drained = err != nil && len(drainedOn) > 0
		if res.drained {
			fmt.Fprintf(r.stderr, "rollout: %s is left drained on %s; fix it, then run the rollout again (it starts with drained backends) or `lb enable %s`\n",
				t.name, strings.Join(drainedOn, ", "), t.name)
		}
	}()

	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("interrupted before draining: %w", err)
	}
	if !first {
		if err := r.step(t, "wait for another healthy backend", func() (string, error) {
			return "ok", r.waitOthersUp(ctx, t.name)
		}); err != nil {
			return res, err
		}
	}

	if err := r.step(t, "drain", func() (string, error) {
		took, err := r.eachLB(func(c *admin.Client) error {
			_, err := c.Drain(ctx, t.name)
			return err
		})
		drainedOn = took
		return "draining on every lb", err
	}); err != nil {
		return res, err
	}

	if err := r.step(t, "wait for in_flight 0", func() (string, error) {
		cut, err := r.waitIdle(ctx, t.name)
		res.cut = cut
		if err != nil {
			return "", err
		}
		if cut > 0 {
			return fmt.Sprintf("drain_timeout %s reached: going on, cutting %d request(s)", r.opts.DrainTimeout, cut), nil
		}
		return "idle", nil
	}); err != nil {
		return res, err
	}

	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("interrupted before the command: %w", err)
	}
	var cmdEnd time.Time
	if err := r.step(t, "run "+r.opts.Command[0], func() (string, error) {
		status, err := r.runCommand(ctx, t)
		cmdEnd = time.Now()
		return status, err
	}); err != nil {
		return res, err
	}

	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("interrupted after the command: %w", err)
	}
	label := fmt.Sprintf("wait for %d fresh passing checks", r.opts.Rise)
	if r.opts.ExpectVersion != "" {
		label += " and version " + r.opts.ExpectVersion
	}
	if err := r.step(t, label, func() (string, error) {
		v, err := r.waitHealthy(ctx, t.name, cmdEnd)
		res.version = v
		return "healthy, version " + orNone(v), err
	}); err != nil {
		return res, err
	}

	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("interrupted before enabling: %w", err)
	}
	if err := r.step(t, "enable", func() (string, error) {
		took, err := r.eachLB(func(c *admin.Client) error {
			_, err := c.Enable(ctx, t.name)
			return err
		})
		drainedOn = slices.DeleteFunc(drainedOn, func(u string) bool { return slices.Contains(took, u) })
		return "active on every lb", err
	}); err != nil {
		return res, err
	}
	drainedOn = nil
	res.done = true
	return res, nil
}

// step runs fn and prints one line: elapsed since the start, backend, step,
// outcome and how long the step took.
func (r *runner) step(t target, name string, fn func() (string, error)) error {
	begin := time.Now()
	outcome, err := fn()
	took := time.Since(begin)
	if err != nil {
		outcome = "FAILED: " + err.Error()
	}
	fmt.Fprintf(r.stdout, "[%7.1fs] %-*s  %s: %s (%s)\n",
		time.Since(r.start).Seconds(), r.nameWidth, t.name, name, outcome, roundDuration(took))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// eachLB runs a change on every lb in order, each one even after another failed, so that
// no lb is left out because one before it did not answer. It returns the base URLs of the
// lbs that took it, and an error naming each one that did not, and why. The rollout then
// stops (the caller's step fails), leaving the change where it was made.
func (r *runner) eachLB(op func(c *admin.Client) error) (took []string, err error) {
	var failed []error
	for _, c := range r.lbs {
		if err := op(c); err != nil {
			failed = append(failed, fmt.Errorf("lb %s: %w", c.BaseURL, err))
			continue
		}
		took = append(took, c.BaseURL)
	}
	switch {
	case len(failed) == 0:
		return took, nil
	case len(r.lbs) == 1:
		return took, failed[0]
	}
	return took, &lbErrors{of: len(r.lbs), errs: failed}
}

// lbErrors is a change that some of several lbs did not take: one error per lb.
type lbErrors struct {
	of   int
	errs []error
}

func (e *lbErrors) Error() string {
	msgs := make([]string, len(e.errs))
	for i, err := range e.errs {
		msgs[i] = err.Error()
	}
	return fmt.Sprintf("not taken by %d of %d lbs: %s", len(e.errs), e.of, strings.Join(msgs, "; "))
}

func (e *lbErrors) Unwrap() []error { return e.errs }

// poll calls check every Poll until it reports done, returns an error, or ctx
// is done. A transient (non-API) error is retried; the last one is reported.
func (r *runner) poll(ctx context.Context, check func() (bool, error)) error {
	t := time.NewTicker(r.opts.Poll)
	defer t.Stop()
	var last error
	for {
		done, err := check()
		if err == nil && done {
			return nil
		}
		if err != nil {
			var apiErr *admin.APIError
			if errors.As(err, &apiErr) {
				return err
			}
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// waitOthersUp waits up to HealthTimeout until on every lb another backend is
// healthy and active.
func (r *runner) waitOthersUp(ctx context.Context, name string) error {
	wctx, cancel := context.WithTimeout(ctx, r.opts.HealthTimeout)
	defer cancel()
	var why string
	err := r.poll(wctx, func() (bool, error) {
		lists := make([][]admin.Backend, len(r.lbs))
		for i, c := range r.lbs {
			list, err := c.Backends(wctx)
			if err != nil {
				return false, fmt.Errorf("lb %s: %w", c.BaseURL, err)
			}
			lists[i] = list
		}
		ok, w := othersUp(r.lbs, lists, name)
		why = w
		return ok, nil
	})
	if err != nil && ctx.Err() == nil && why != "" {
		return fmt.Errorf("draining %s would leave no healthy active backend after %s: %s", name, r.opts.HealthTimeout, why)
	}
	return err
}

// waitIdle waits until in_flight is 0 on every lb. At DrainTimeout it stops
// waiting and returns the requests still in flight (they will be cut).
func (r *runner) waitIdle(ctx context.Context, name string) (int64, error) {
	wctx, cancel := context.WithTimeout(ctx, r.opts.DrainTimeout)
	defer cancel()
	inFlight := make([]int64, len(r.lbs))
	err := r.poll(wctx, func() (bool, error) {
		idle := true
		for i, c := range r.lbs {
			b, err := c.Backend(wctx, name)
			if err != nil {
				return false, fmt.Errorf("lb %s: %w", c.BaseURL, err)
			}
			inFlight[i] = b.InFlight
			if b.InFlight > 0 {
				idle = false
			}
		}
		return idle, nil
	})
	if err == nil {
		return 0, nil
	}
	if ctx.Err() != nil {
		return 0, err
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return 0, err
	}
	var cut int64
	for _, n := range inFlight {
		cut += n
	}
	return cut, nil
}

// waitHealthy waits until, on every lb, the backend is healthy with at least
// Rise passing checks stamped after cmdEnd (and the expected version). It
// returns the version the first lb reports.
//
// checks_ok is a consecutive count that may have started before the command
// ran, so passes are counted from a snapshot taken after it returned: the
// increase over the snapshot, or the whole count once it was seen to drop
// (a failure reset it after the snapshot).
func (r *runner) waitHealthy(ctx context.Context, name string, cmdEnd time.Time) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, r.opts.HealthTimeout)
	defer cancel()
	type track struct {
		base, prev int
		snapCheck  time.Time
		last       admin.Backend
	}
	tr := make([]track, len(r.lbs))
	for i, c := range r.lbs {
		b, err := c.Backend(wctx, name)
		if err != nil {
			return "", fmt.Errorf("lb %s: %w", c.BaseURL, err)
		}
		tr[i] = track{base: b.ChecksOK, prev: b.ChecksOK, snapCheck: b.LastCheck, last: b}
	}
	err := r.poll(wctx, func() (bool, error) {
		all := true
		for i, c := range r.lbs {
			b, err := c.Backend(wctx, name)
			if err != nil {
				return false, fmt.Errorf("lb %s: %w", c.BaseURL, err)
			}
			s := &tr[i]
			if b.ChecksOK < s.prev {
				s.base = 0
			}
			s.prev, s.last = b.ChecksOK, b
			ok := b.Healthy && b.ChecksOK-s.base >= r.opts.Rise &&
				b.LastCheck.After(cmdEnd) && b.LastCheck.After(s.snapCheck) &&
				(r.opts.ExpectVersion == "" || b.Version == r.opts.ExpectVersion)
			if !ok {
				all = false
			}
		}
		return all, nil
	})
	if err != nil {
		var states []string
		for i, c := range r.lbs {
			b := tr[i].last
			states = append(states, fmt.Sprintf("lb %s: healthy %t, %d passing check(s) since the command, version %s, last check %s, last error %s",
				c.BaseURL, b.Healthy, max(0, b.ChecksOK-tr[i].base), orNone(b.Version), b.LastCheck.Format(time.RFC3339Nano), orNone(b.LastError)))
		}
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not ready after %s", r.opts.HealthTimeout)
		}
		return tr[0].last.Version, fmt.Errorf("%w; %s", err, strings.Join(states, "; "))
	}
	return tr[0].last.Version, nil
}

// summary prints what happened to every backend.
func (r *runner) summary(results []result, targets []target, failure error) {
	w := r.stdout
	done := 0
	var cut int64
	for _, res := range results {
		if res.done {
			done++
		}
		cut += res.cut
	}
	took := time.Since(r.start).Round(100 * time.Millisecond)
	if failure == nil {
		fmt.Fprintf(w, "rollout done: %d of %d backend(s) in %s; %d request(s) cut at drain_timeout\n", done, len(targets), took, cut)
	} else {
		fmt.Fprintf(w, "rollout STOPPED: %d of %d backend(s) done in %s; %d request(s) cut at drain_timeout\n", done, len(targets), took, cut)
	}
	for i, t := range targets {
		status := "not started"
		var res result
		if i < len(results) {
			res = results[i]
			status = "FAILED (not drained)"
			if res.drained {
				status = "FAILED (left drained)"
			}
			if res.done {
				status = "done, version " + orNone(res.version)
			}
		}
		dur := ""
		if i < len(results) {
			dur = " in " + roundDuration(res.duration).String()
		}
		fmt.Fprintf(w, "  %-*s  %s%s\n", r.nameWidth, t.name, status, dur)
	}
}

// roundDuration keeps durations readable: milliseconds below a second, tenths above.
func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// quoteArgs renders argv for people, quoting arguments that need it.
func quoteArgs(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`;&|<>()*?[]{}~#") {
			out[i] = fmt.Sprintf("%q", a)
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}
