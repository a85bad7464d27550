package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"outrigger/internal/admin"
)

// installScript is the command of most tests: it logs its environment and
// "installs" version $2 for $LB_BACKEND_NAME by writing the file the fake app
// server reads. If $3 names this backend it prints 30 lines and exits 3.
const installScript = `
dir=$1 ver=$2 failOn=${3:-}
printf 'cmd %s %s %s\n' "$LB_BACKEND_NAME" "$LB_BACKEND_URL" "$LB_BACKEND_HOST" >> "$dir/events"
env | grep '^LB_' | sort > "$dir/$LB_BACKEND_NAME.env"
if [ "$LB_BACKEND_NAME" = "$failOn" ]; then
	i=1
	while [ $i -le 30 ]; do echo "line $i"; i=$((i+1)); done
	echo "boom: disk full" >&2
	exit 3
fi
printf '%s' "$ver" > "$dir/$LB_BACKEND_NAME.version.tmp"
mv "$dir/$LB_BACKEND_NAME.version.tmp" "$dir/$LB_BACKEND_NAME.version"
echo "installed $ver on $LB_BACKEND_NAME"
`

func installCmd(f *fleet, version, failOn string) []string {
	return []string{"/bin/sh", "-c", installScript, "install", f.dir, version, failOn}
}

// fastOpts are Options with short waits for tests.
func fastOpts(cmd []string) Options {
	return Options{
		Command:       cmd,
		Rise:          2,
		DrainTimeout:  5 * time.Second,
		HealthTimeout: 10 * time.Second,
		Poll:          5 * time.Millisecond,
		Env:           []string{"PATH=" + os.Getenv("PATH")},
	}
}

func runRollout(ctx context.Context, t *testing.T, lbs []*fakeLB, opts Options) (stdout, stderr string, err error) {
	t.Helper()
	clients := make([]*admin.Client, len(lbs))
	for i, lb := range lbs {
		clients[i] = lb.client()
	}
	var out, errOut bytes.Buffer
	err = Run(ctx, clients, opts, &out, &errOut)
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	return out.String(), errOut.String(), err
}

func TestRunHappyPath(t *testing.T) {
	f := newFleet(t, "v1", "app-1", "app-2", "app-3")
	lb := newFakeLB(t, "lb0", f, "app-1", "app-2", "app-3")
	opts := fastOpts(installCmd(f, "v2", ""))
	opts.ExpectVersion = "v2"
	// The default environment is ours minus every LB_ADMIN* variable.
	opts.Env = nil
	t.Setenv("LB_ADMIN", lb.srv.URL)
	t.Setenv("LB_ADMIN_TOKEN_FILE", "/etc/lb/admin-token")
	t.Setenv("LB_ADMIN_TOKEN", testToken)
	t.Setenv("LB_BACKEND_NAME", "stale")

	stdout, _, err := runRollout(context.Background(), t, []*fakeLB{lb}, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	var want []string
	for _, name := range []string{"app-1", "app-2", "app-3"} {
		want = append(want,
			"lb0 drain "+name,
			fmt.Sprintf("cmd %s %s 127.0.0.1", name, f.url(name)),
			"lb0 enable "+name+" version=v2 healthy=true fresh=",
		)
	}
	got := f.eventLines(t)
	if len(got) != len(want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("event %d = %q, want prefix %q", i, got[i], want[i])
		}
		// Enabled only after at least rise checks saw the new version.
		if strings.Contains(got[i], "enable") {
			var fresh int
			fmt.Sscanf(got[i][strings.Index(got[i], "fresh=")+len("fresh="):], "%d", &fresh)
			if fresh < opts.Rise {
				t.Errorf("event %q: enabled after %d check(s) of the new version, want >= %d", got[i], fresh, opts.Rise)
			}
		}
	}

	for _, name := range []string{"app-1", "app-2", "app-3"} {
		b := lb.state(name)
		if b.State != admin.StateActive || b.Version != "v2" || !b.Healthy {
			t.Errorf("%s: state %s version %s healthy %t, want active v2 healthy", name, b.State, b.Version, b.Healthy)
		}
		env, err := os.ReadFile(filepath.Join(f.dir, name+".env"))
		if err != nil {
			t.Fatal(err)
		}
		gotEnv := strings.Split(strings.TrimSpace(string(env)), "\n")
		wantEnv := []string{
			"LB_BACKEND_HOST=127.0.0.1",
			"LB_BACKEND_NAME=" + name,
			"LB_BACKEND_URL=" + f.url(name),
		}
		if !slices.Equal(gotEnv, wantEnv) {
			t.Errorf("%s: command saw LB_ variables %q, want %q", name, gotEnv, wantEnv)
		}
	}

	for _, s := range []string{"drain: draining on every lb", "wait for in_flight 0: idle", "run /bin/sh: exit status 0",
		"and version v2: healthy, version v2", "enable: active on every lb", "rollout done: 3 of 3 backend(s)"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("stdout lacks %q", s)
		}
	}
	// One line per step, each with the elapsed time.
	steps := 0
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, "[") {
			steps++
			if !strings.Contains(l, "s] ") || !strings.HasSuffix(l, "s)") {
				t.Errorf("step line %q lacks elapsed time and duration", l)
			}
		}
	}
	// 3 backends: drain, idle, run, health, enable; the 2nd and 3rd also check the others first.
	if steps != 3*5+2 {
		t.Errorf("got %d step lines, want %d", steps, 3*5+2)
	}
}

func TestRunCommandFailsStopsWithBackendDrained(t *testing.T) {
	f := newFleet(t, "v1", "app-1", "app-2", "app-3")
	lb := newFakeLB(t, "lb0", f, "app-1", "app-2", "app-3")
	opts := fastOpts(installCmd(f, "v2", "app-2"))
	opts.TailLines = 5

	stdout, stderr, err := runRollout(context.Background(), t, []*fakeLB{lb}, opts)
	if err == nil {
		t.Fatal("Run succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "app-2") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("error %q does not name app-2 and exit status 3", err)
	}
	for name, want := range map[string]struct{ state, version string }{
		"app-1": {admin.StateActive, "v2"},
		"app-2": {admin.StateDraining, "v1"},
		"app-3": {admin.StateActive, "v1"},
	} {
		b := lb.state(name)
		if b.State != want.state || b.Version != want.version {
			t.Errorf("%s: state %s version %s, want %s %s", name, b.State, b.Version, want.state, want.version)
		}
	}
	for _, ev := range f.eventLines(t) {
		if strings.Contains(ev, "app-3") {
			t.Errorf("app-3 was touched after the failure: %q", ev)
		}
	}
	for _, s := range []string{"exit status 3", "| line 27", "| line 30", "| boom: disk full", "app-2 is left drained"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q", s)
		}
	}
	if strings.Contains(stderr, "line 26") {
		t.Errorf("stderr shows more than the last 5 lines")
	}
	if !strings.Contains(stdout, "rollout STOPPED: 1 of 3") || !strings.Contains(stdout, "app-2  FAILED (left drained)") ||
		!strings.Contains(stdout, "app-3  not started") {
		t.Errorf("summary does not say what happened to each backend")
	}
}

func TestRunExpectVersionTimeout(t *testing.T) {
	f := newFleet(t, "v1", "app-1", "app-2")
	lb := newFakeLB(t, "lb0", f, "app-1", "app-2")
	opts := fastOpts(installCmd(f, "v2-rc1", ""))
	opts.ExpectVersion = "v2"
	opts.HealthTimeout = 300 * time.Millisecond

	_, _, err := runRollout(context.Background(), t, []*fakeLB{lb}, opts)
	if err == nil {
		t.Fatal("Run succeeded, want an error")
	}
	for _, s := range []string{"app-1", "not ready after 300ms", "version v2-rc1"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	if b := lb.state("app-1"); b.State != admin.StateDraining {
		t.Errorf("app-1 is %s, want draining", b.State)
	}
	if b := lb.state("app-2"); b.State != admin.StateActive || b.Version != "v1" {
		t.Errorf("app-2: %s %s, want untouched (active v1)", b.State, b.Version)
	}
}

func TestRunTwoLBs(t *testing.T) {
	f := newFleet(t, "v1", "app-1", "app-2")
	lb0 := newFakeLB(t, "lb0", f, "app-1", "app-2")
	lb1 := newFakeLB(t, "lb1", f, "app-1", "app-2")
	opts := fastOpts(installCmd(f, "v2", ""))
	opts.ExpectVersion = "v2"

	if _, _, err := runRollout(context.Background(), t, []*fakeLB{lb0, lb1}, opts); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var want []string
	for _, name := range []string{"app-1", "app-2"} {
		want = append(want,
			"lb0 drain "+name, "lb1 drain "+name,
			"cmd "+name,
			"lb0 enable "+name+" version=v2 healthy=true", "lb1 enable "+name+" version=v2 healthy=true")
	}
	got := f.eventLines(t)
	if len(got) != len(want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("event %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
	for _, lb := range []*fakeLB{lb0, lb1} {
		for _, name := range []string{"app-1", "app-2"} {
			if b := lb.state(name); b.State != admin.StateActive || b.Version != "v2" {
				t.Errorf("%s %s: %s %s, want active v2", lb.id, name, b.State, b.Version)
			}
		}
	}
}

// TestRunDrainFailsOnSecondLB: a drain that one lb of three refuses is still sent to the
// third; the rollout then stops, leaving the backend drained where the drain was taken, and
// says so per lb.
func TestRunDrainFailsOnSecondLB(t *testing.T) {
	f := newFleet(t, "v1", "app-1", "app-2")
	lb0 := newFakeLB(t, "lb0", f, "app-1", "app-2")
	lb1 := newFakeLB(t, "lb1", f, "app-1", "app-2")
	lb2 := newFakeLB(t, "lb2", f, "app-1", "app-2")
	lb1.set("app-1", func(b *fakeBackend) { b.refuseDrain = true })

	stdout, stderr, err := runRollout(context.Background(), t, []*fakeLB{lb0, lb1, lb2}, fastOpts(installCmd(f, "v2", "")))
	if err == nil || !strings.Contains(err.Error(), "not taken by 1 of 3 lbs: lb "+lb1.srv.URL) || !strings.Contains(err.Error(), "state file not written") {
		t.Fatalf("got error %v, want one naming lb1 and its answer", err)
	}
	if got, want := f.eventLines(t), []string{"lb0 drain app-1", "lb2 drain app-1"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q (every lb tried, no command after a failed drain)", got, want)
	}
	for _, lb := range []*fakeLB{lb0, lb2} {
		if b := lb.state("app-1"); b.State != admin.StateDraining {
			t.Errorf("app-1 on %s is %s, want left draining", lb.id, b.State)
		}
	}
	if b := lb1.state("app-1"); b.State != admin.StateActive {
		t.Errorf("app-1 on lb1 is %s, want active (it refused the drain)", b.State)
	}
	if !strings.Contains(stdout, "app-1  FAILED (left drained)") {
		t.Errorf("summary does not say app-1 was left drained")
	}
	if want := "app-1 is left drained on " + lb0.srv.URL + ", " + lb2.srv.URL + ";"; !strings.Contains(stderr, want) {
		t.Errorf("stderr does not say where app-1 is left drained (%q)", want)
	}
}

// TestRunDrainNotAnsweredBySecondLB: an lb that accepts the drain call and never answers
// stops the rollout after the call's bound, named with what it did; the other lb took the
// drain, and the command never ran.
func TestRunDrainNotAnsweredBySecondLB(t *testing.T) {
	f := newFleet(t, "v1", "app-1", "app-2")
	lb0 := newFakeLB(t, "lb0", f, "app-1", "app-2")
	lb1 := newFakeLB(t, "lb1", f, "app-1", "app-2")
	lb1.freezeDrains.Store(true)

	start := time.Now()
	_, _, err := runRollout(context.Background(), t, []*fakeLB{lb0, lb1}, fastOpts(installCmd(f, "v2", "")))
	if err == nil || !strings.Contains(err.Error(), "lb "+lb1.srv.URL+": drain \"app-1\": no answer within "+callTimeout.String()) {
		t.Fatalf("got error %v, want one naming lb1 and that it did not answer", err)
	}
	if took := time.Since(start); took > 10*callTimeout {
		t.Errorf("the rollout took %s to give up on a silent lb (call bound %s)", took, callTimeout)
	}
	if got, want := f.eventLines(t), []string{"lb0 drain app-1"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q (no command after a drain that was not answered)", got, want)
	}
}

// TestRunEnableFailsOnOneLB: an enable that one lb refuses is still sent to the others; the
// rollout stops and says the backend is left drained on that lb only.
func TestRunEnableFailsOnOneLB(t *testing.T) {
	f := newFleet(t, "v1", "app-1", "app-2")
	lb0 := newFakeLB(t, "lb0", f, "app-1", "app-2")
	lb1 := newFakeLB(t, "lb1", f, "app-1", "app-2")
	lb0.set("app-1", func(b *fakeBackend) { b.refuseEnable = true })

	stdout, stderr, err := runRollout(context.Background(), t, []*fakeLB{lb0, lb1}, fastOpts(installCmd(f, "v2", "")))
	if err == nil || !strings.Contains(err.Error(), "enable: not taken by 1 of 2 lbs: lb "+lb0.srv.URL) || !strings.Contains(err.Error(), "409") {
		t.Fatalf("got error %v, want one naming lb0 and its 409", err)
	}
	if b := lb0.state("app-1"); b.State != admin.StateDraining {
		t.Errorf("app-1 on lb0 is %s, want left draining", b.State)
	}
	if b := lb1.state("app-1"); b.State != admin.StateActive {
		t.Errorf("app-1 on lb1 is %s, want enabled", b.State)
	}
	if b := lb1.state("app-2"); b.State != admin.StateActive {
		t.Errorf("app-2 on lb1 is %s, want untouched (the rollout stopped)", b.State)
	}
	if !strings.Contains(stdout, "app-1  FAILED (left drained)") {
		t.Errorf("summary does not say app-1 was left drained")
	}
	if want := "app-1 is left drained on " + lb0.srv.URL + ";"; !strings.Contains(stderr, want) {
		t.Errorf("stderr does not say where app-1 is left drained (%q)", want)
	}
}

func TestRunRefusesToStart(t *testing.T) {
	tests := []struct {
		name    string
		lbNames [][]string // backends per lb
		setup   func(f *fleet, lbs []*fakeLB)
		dryRun  bool
		wantErr string
		wantOut string
	}{
		{
			name:    "single backend",
			lbNames: [][]string{{"app-1"}},
			wantErr: "only 1 backend(s)",
		},
		{
			name:    "the only other backend is down",
			lbNames: [][]string{{"app-1", "app-2"}},
			setup: func(f *fleet, lbs []*fakeLB) {
				lbs[0].set("app-2", func(b *fakeBackend) { b.down, b.Healthy = true, false })
			},
			wantErr: "no backend besides app-1 is healthy and active",
		},
		{
			name:    "the only other backend is down on the second lb",
			lbNames: [][]string{{"app-1", "app-2"}, {"app-1", "app-2"}},
			setup: func(f *fleet, lbs []*fakeLB) {
				lbs[1].set("app-2", func(b *fakeBackend) { b.down, b.Healthy = true, false })
			},
			wantErr: "no backend besides app-1 is healthy and active",
		},
		{
			name:    "lists differ",
			lbNames: [][]string{{"app-1", "app-2", "app-3"}, {"app-1", "app-2"}},
			wantErr: "app-3 missing on",
		},
		{
			name:    "dry run of an impossible rollout",
			lbNames: [][]string{{"app-1"}},
			dryRun:  true,
			wantErr: "only 1 backend(s)",
			wantOut: "rollout plan (dry run)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, "v1", "app-1", "app-2", "app-3")
			var lbs []*fakeLB
			for i, names := range tc.lbNames {
				lbs = append(lbs, newFakeLB(t, fmt.Sprintf("lb%d", i), f, names...))
			}
			if tc.setup != nil {
				tc.setup(f, lbs)
			}
			opts := fastOpts(installCmd(f, "v2", ""))
			opts.DryRun = tc.dryRun
			stdout, _, err := runRollout(context.Background(), t, lbs, opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
			if !strings.Contains(stdout, tc.wantOut) {
				t.Errorf("stdout lacks %q", tc.wantOut)
			}
			if ev := f.eventLines(t); len(ev) != 0 {
				t.Errorf("a refused rollout changed something: %q", ev)
			}
		})
	}
}

func TestRunDryRun(t *testing.T) {
	f := newFleet(t, "v1", "app-1", "app-2", "app-3")
	lb := newFakeLB(t, "lb0", f, "app-1", "app-2", "app-3")
	lb.set("app-3", func(b *fakeBackend) { b.State = admin.StateDraining })
	opts := fastOpts(installCmd(f, "v2", ""))
	opts.DryRun = true
	opts.ExpectVersion = "v2"

	stdout, _, err := runRollout(context.Background(), t, []*fakeLB{lb}, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ev := f.eventLines(t); len(ev) != 0 {
		t.Errorf("a dry run changed something: %q", ev)
	}
	// A backend already draining goes first.
	i3, i1, i2 := strings.Index(stdout, "1. app-3"), strings.Index(stdout, "2. app-1"), strings.Index(stdout, "3. app-2")
	if i3 < 0 || i1 < i3 || i2 < i1 {
		t.Errorf("plan order is not app-3, app-1, app-2")
	}
	for _, s := range []string{"reporting version v2", "dry run: nothing was changed", "/bin/sh -c"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("stdout lacks %q", s)
		}
	}
}

func TestRunDrainingBackendGoesFirstAndIsEnabled(t *testing.T) {
	f := newFleet(t, "v1", "app-1", "app-2")
	lb := newFakeLB(t, "lb0", f, "app-1", "app-2")
	lb.set("app-2", func(b *fakeBackend) { b.State = admin.StateDraining })
	if _, _, err := runRollout(context.Background(), t, []*fakeLB{lb}, fastOpts(installCmd(f, "v2", ""))); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := f.eventLines(t)
	if len(got) == 0 || got[0] != "lb0 drain app-2" {
		t.Fatalf("events %q: want app-2 first", got)
	}
	for _, name := range []string{"app-1", "app-2"} {
		if b := lb.state(name); b.State != admin.StateActive || b.Version != "v2" {
			t.Errorf("%s: %s %s, want active v2", name, b.State, b.Version)
		}
	}
}

func TestRunDrainWait(t *testing.T) {
	tests := []struct {
		name     string
		inFlight []int64
		timeout  time.Duration
		wantOut  string
	}{
		{"requests finish", []int64{3, 2, 1, 0}, 5 * time.Second, "wait for in_flight 0: idle"},
		{"drain_timeout cuts", []int64{3}, 50 * time.Millisecond, "cutting 3 request(s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, "v1", "app-1", "app-2")
			lb := newFakeLB(t, "lb0", f, "app-1", "app-2")
			lb.set("app-1", func(b *fakeBackend) { b.inFlight = tc.inFlight })
			opts := fastOpts(installCmd(f, "v2", ""))
			opts.DrainTimeout = tc.timeout
			stdout, _, err := runRollout(context.Background(), t, []*fakeLB{lb}, opts)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !strings.Contains(stdout, tc.wantOut) {
				t.Errorf("stdout lacks %q", tc.wantOut)
			}
		})
	}
}

// signalWriter closes ch the first time the output contains s.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	s    string
	ch   chan struct{}
	done bool
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.s) {
		w.done = true
		close(w.ch)
	}
	return len(p), nil
}

func TestRunCancelStopsWithBackendDrained(t *testing.T) {
	f := newFleet(t, "v1", "app-1", "app-2")
	lb := newFakeLB(t, "lb0", f, "app-1", "app-2")
	// The command says it started, then waits; SIGTERM ends it.
	opts := fastOpts([]string{"/bin/sh", "-c", `echo started; exec sleep 60`})
	started := &signalWriter{s: "started", ch: make(chan struct{})}
	opts.CommandOutput = started
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-started.ch
		cancel()
	}()

	begin := time.Now()
	_, stderr, err := runRollout(ctx, t, []*fakeLB{lb}, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v, want context.Canceled", err)
	}
	if took := time.Since(begin); took > commandWaitDelay {
		t.Errorf("Run took %s after the interrupt, want the command stopped at once", took)
	}
	if b := lb.state("app-1"); b.State != admin.StateDraining {
		t.Errorf("app-1 is %s, want draining", b.State)
	}
	if b := lb.state("app-2"); b.State != admin.StateActive {
		t.Errorf("app-2 is %s, want active (untouched)", b.State)
	}
	for _, s := range []string{"signal: terminated", "| started", "app-1 is left drained"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q", s)
		}
	}
}

func TestRunCancelledBeforeStart(t *testing.T) {
	f := newFleet(t, "v1", "app-1", "app-2")
	lb := newFakeLB(t, "lb0", f, "app-1", "app-2")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := runRollout(ctx, t, []*fakeLB{lb}, fastOpts(installCmd(f, "v2", "")))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v, want context.Canceled", err)
	}
	if ev := f.eventLines(t); len(ev) != 0 {
		t.Errorf("a cancelled rollout changed something: %q", ev)
	}
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"no command", Options{}, "no command"},
		{"max unavailable 2", Options{Command: []string{"true"}, MaxUnavailable: 2}, "only 1 is supported"},
		{"negative rise", Options{Command: []string{"true"}, Rise: -1}, "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(context.Background(), []*admin.Client{{BaseURL: "http://127.0.0.1:1"}}, tc.opts, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	if err := Run(context.Background(), nil, Options{Command: []string{"true"}}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("Run with no lb succeeded, want an error")
	}
}

func TestTail(t *testing.T) {
	long := strings.Repeat("x", maxLineBytes+10)
	tests := []struct {
		name   string
		n      int
		writes []string
		want   []string
	}{
		{"empty", 3, nil, nil},
		{"fewer than n", 3, []string{"a\nb\n"}, []string{"a", "b"}},
		{"keeps the last n", 2, []string{"a\nb\nc\n"}, []string{"b", "c"}},
		{"lines split across writes", 3, []string{"he", "llo\nwor", "ld\n"}, []string{"hello", "world"}},
		{"unterminated last line", 2, []string{"a\nb\nc"}, []string{"b", "c"}},
		{"crlf", 2, []string{"a\r\n"}, []string{"a"}},
		{"long line cut", 1, []string{long + "\n"}, []string{long[:maxLineBytes]}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTail(tc.n)
			for _, w := range tc.writes {
				if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := tl.Lines(); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCommandEnv(t *testing.T) {
	base := []string{"PATH=/bin", "LB_ADMIN=http://x", "LB_ADMIN_TOKEN_FILE=/t", "LB_ADMINISTRATOR=1",
		"LB_BACKEND_NAME=old", "HOME=/root", "XLB_ADMIN=kept"}
	got := commandEnv(base, target{name: "app-1", url: "http://[::1]:8080", host: "::1"})
	want := []string{"PATH=/bin", "HOME=/root", "XLB_ADMIN=kept",
		"LB_BACKEND_NAME=app-1", "LB_BACKEND_URL=http://[::1]:8080", "LB_BACKEND_HOST=::1"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
