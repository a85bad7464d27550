package health

import (
	"strings"
	"testing"
	"time"
)

func TestOnePassAdmitsNewBackend(t *testing.T) {
	hs := newHealthServer(t)
	pool := newFakePool()
	pool.add("a", hs.URL)
	c, reg, logs := newTestChecker(t, Config{Rise: 3, Fall: 2}, pool)
	c.CheckAll(bg())
	if !pool.IsHealthy("a") {
		t.Fatal("one passing check did not admit a new backend")
	}
	r := pool.last("a")
	if !r.ok || !r.answered || r.checksOK != 1 || r.version != "v1" || r.errText != "" || r.at.IsZero() {
		t.Errorf("report %+v, want ok, answered, checks_ok 1, version v1", r)
	}
	if got := checkCount(t, reg, "a", "ok"); got != 1 {
		t.Errorf("lb_health_checks_total{a,ok} = %v, want 1", got)
	}
	if got := logs.Count(`"msg":"backend up"`); got != 1 {
		t.Errorf("%d 'backend up' lines, want 1", got)
	}
}

func TestRiseFallSequence(t *testing.T) {
	hs := newHealthServer(t)
	pool := newFakePool()
	pool.add("a", hs.URL)
	c, _, logs := newTestChecker(t, Config{Rise: 2, Fall: 2}, pool)
	steps := []struct {
		mode     int32
		want     bool
		checksOK int
	}{
		{modeOK, true, 1},        // one pass admits
		{modeOK, true, 2},        // steady
		{modeFail, true, 0},      // 1 failure < fall
		{modeOK, true, 1},        // failures reset
		{modeFail, true, 0},      //
		{modeGarbage, false, 0},  // 2 failures: down
		{modeOK, false, 1},       // rise applies now
		{modeOK, true, 2},        // up again
		{modeDraining, false, 0}, // draining: out at once
		{modeOK, false, 1},
		{modeDegraded, false, 0}, // a 503 that is not draining is a failure
		{modeOK, false, 1},
		{modeOK, true, 2},
	}
	for i, s := range steps {
		hs.mode.Store(s.mode)
		c.CheckAll(bg())
		if got := pool.IsHealthy("a"); got != s.want {
			t.Fatalf("step %d (mode %d): healthy %v, want %v", i, s.mode, got, s.want)
		}
		if got := pool.last("a").checksOK; got != s.checksOK {
			t.Errorf("step %d: checks_ok %d, want %d", i, got, s.checksOK)
		}
	}
	// Transitions only: up, down, up, down (draining), up.
	if up, down := logs.Count(`"backend up"`), logs.Count(`"backend down"`); up != 3 || down != 2 {
		t.Errorf("logged %d up and %d down lines, want 3 and 2 (transitions only)", up, down)
	}
}

func TestDrainingAnswerTakesOutAtOnce(t *testing.T) {
	hs := newHealthServer(t)
	pool := newFakePool()
	pool.add("a", hs.URL)
	c, reg, _ := newTestChecker(t, Config{Rise: 2, Fall: 5}, pool)
	c.CheckAll(bg())
	hs.mode.Store(modeDraining)
	c.CheckAll(bg())
	if pool.IsHealthy("a") {
		t.Error("a 503 draining answer did not take the backend out at once")
	}
	if r := pool.last("a"); r.ok || !r.answered || !strings.Contains(r.errText, "draining") {
		t.Errorf("report %+v, want not ok but answered, with a draining error", r)
	}
	if got := checkCount(t, reg, "a", "draining"); got != 1 {
		t.Errorf("lb_health_checks_total{a,draining} = %v, want 1", got)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T) string
		wantErr string
		// answered: the backend accepts connections (lb's fail-open and /readyz count it)
		answered bool
	}{
		{"dead", func(t *testing.T) string { return deadURL(t) }, "connection refused", false},
		{"frozen", func(t *testing.T) string {
			hs := newHealthServer(t)
			hs.mode.Store(modeFrozen)
			return hs.URL
		}, "no answer within 100ms", false},
		{"500", func(t *testing.T) string {
			hs := newHealthServer(t)
			hs.mode.Store(modeFail)
			return hs.URL
		}, "status 500", true},
		{"not json", func(t *testing.T) string {
			hs := newHealthServer(t)
			hs.mode.Store(modeGarbage)
			return hs.URL
		}, "not health JSON", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := newFakePool()
			pool.add("a", tt.setup(t))
			pool.SetHealthy("a", true) // up, so Fall applies
			c, reg, _ := newTestChecker(t, Config{Timeout: 100 * time.Millisecond, Rise: 2, Fall: 2}, pool)
			start := time.Now()
			c.CheckAll(bg())
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("check took %v, want about the 100ms timeout", took)
			}
			if !pool.IsHealthy("a") {
				t.Error("down after one failure, want fall=2")
			}
			c.CheckAll(bg())
			if pool.IsHealthy("a") {
				t.Error("still up after fall failures")
			}
			r := pool.last("a")
			if r.ok || !strings.Contains(r.errText, tt.wantErr) || r.answered != tt.answered {
				t.Errorf("report %+v, want error containing %q and answered %t", r, tt.wantErr, tt.answered)
			}
			if got := checkCount(t, reg, "a", "fail"); got != 2 {
				t.Errorf("lb_health_checks_total{a,fail} = %v, want 2", got)
			}
		})
	}
}

func TestPassiveEjectionNeedsRise(t *testing.T) {
	hs := newHealthServer(t)
	other := newHealthServer(t)
	pool := newFakePool()
	pool.add("a", hs.URL)
	pool.add("b", other.URL)
	c, _, _ := newTestChecker(t, Config{Rise: 2, Fall: 2}, pool)
	for range 3 {
		c.CheckAll(bg())
	}
	p := NewPassive(2, pool, nil)
	p.Observe("a", true)
	p.Observe("a", true)
	if pool.IsHealthy("a") {
		t.Fatal("passive failures did not eject")
	}
	c.CheckAll(bg())
	if pool.IsHealthy("a") {
		t.Error("one pass brought back a passively ejected backend; rise=2 applies")
	}
	c.CheckAll(bg())
	if !pool.IsHealthy("a") {
		t.Error("rise passes did not bring it back")
	}
}

func TestTargetsComeAndGo(t *testing.T) {
	hs := newHealthServer(t)
	pool := newFakePool()
	pool.add("a", hs.URL)
	pool.add("b", hs.URL)
	c, reg, _ := newTestChecker(t, Config{}, pool)
	c.CheckAll(bg())
	if checkCount(t, reg, "b", "") != 1 {
		t.Fatal("b not checked")
	}
	pool.remove("b")
	c.CheckAll(bg())
	if got := checkCount(t, reg, "b", ""); got != 0 {
		t.Errorf("removed backend b still has lb_health_checks_total (%v)", got)
	}
	if got := checkCount(t, reg, "a", "ok"); got != 2 {
		t.Errorf("a checked %v times, want 2", got)
	}
	pool.add("c", hs.URL)
	c.CheckAll(bg())
	if !pool.IsHealthy("c") {
		t.Error("new backend c not picked up")
	}
	// A name whose URL changed starts over.
	pool.add("c", deadURL(t))
	pool.SetHealthy("c", false)
	c.CheckAll(bg())
	if r := pool.last("c"); r.ok {
		t.Error("c checked at its old URL")
	}
}

func TestVersionRecorded(t *testing.T) {
	hs := newHealthServer(t)
	pool := newFakePool()
	pool.add("a", hs.URL)
	c, _, _ := newTestChecker(t, Config{}, pool)
	c.CheckAll(bg())
	hs.version.Store("v2")
	c.CheckAll(bg())
	if got := pool.last("a").version; got != "v2" {
		t.Errorf("version %q, want v2", got)
	}
}

func TestNextDelay(t *testing.T) {
	tests := []struct {
		interval time.Duration
		changing bool
		jitter   string // "low", "mid", "high"
		want     time.Duration
	}{
		{2 * time.Second, false, "mid", 2 * time.Second},
		{2 * time.Second, false, "low", 1800 * time.Millisecond},
		{2 * time.Second, false, "high", 2200*time.Millisecond - 1},
		{2 * time.Second, true, "mid", 500 * time.Millisecond},
		{800 * time.Millisecond, true, "mid", 250 * time.Millisecond}, // floor
		{1 * time.Second, true, "low", 250 * time.Millisecond},        // floor after jitter (225 ms before it)
		{1 * time.Second, true, "high", 275*time.Millisecond - 1},
		{100 * time.Millisecond, true, "mid", 100 * time.Millisecond}, // never slower than interval
		{10 * time.Second, true, "low", 2250 * time.Millisecond},
	}
	for _, tt := range tests {
		cfg := Config{Interval: tt.interval}
		jit := func(n int64) int64 {
			switch tt.jitter {
			case "low":
				return 0
			case "high":
				return n - 1
			}
			return n / 2
		}
		if got := cfg.nextDelay(tt.changing, jit); got != tt.want {
			t.Errorf("interval %v changing %v jitter %s: got %v, want %v", tt.interval, tt.changing, tt.jitter, got, tt.want)
		}
	}
}

func TestSetConfig(t *testing.T) {
	pool := newFakePool()
	c, _, _ := newTestChecker(t, Config{}, pool)
	if got := *c.cfg.Load(); got != (Config{Path: "/healthz", Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 2}) {
		t.Errorf("defaults %+v", got)
	}
	c.SetConfig(Config{Path: "/up", Interval: time.Second, Timeout: time.Second, Rise: 3, Fall: 4})
	if got := c.cfg.Load(); got.Path != "/up" || got.Rise != 3 || got.Fall != 4 {
		t.Errorf("after SetConfig %+v", got)
	}
}

// A degraded app (503 {"status":"degraded"}: its database does not answer)
// fails its checks like any failure, under a result label of its own, so an
// alert can tell "the app says it cannot serve" from "the app is gone".
func TestDegradedAnswerCountsTowardFall(t *testing.T) {
	hs := newHealthServer(t)
	pool := newFakePool()
	pool.add("a", hs.URL)
	c, reg, _ := newTestChecker(t, Config{Rise: 2, Fall: 2}, pool)
	c.CheckAll(bg())
	hs.mode.Store(modeDegraded)
	c.CheckAll(bg())
	if !pool.IsHealthy("a") {
		t.Error("one degraded answer took the backend out; want it to count toward fall (2)")
	}
	c.CheckAll(bg())
	if pool.IsHealthy("a") {
		t.Error("two degraded answers left the backend up; want down at fall")
	}
	if r := pool.last("a"); r.ok || !strings.Contains(r.errText, "degraded") {
		t.Errorf("report %+v, want not ok with a degraded error", r)
	}
	if got := checkCount(t, reg, "a", "degraded"); got != 2 {
		t.Errorf("lb_health_checks_total{a,degraded} = %v, want 2", got)
	}
	if got := checkCount(t, reg, "a", "fail"); got != 0 {
		t.Errorf("lb_health_checks_total{a,fail} = %v, want 0 (degraded is counted apart)", got)
	}
}
