package balancer

import (
	"net/url"
	"testing"
	"time"
)

func testBackends(n int) []*Backend {
	out := make([]*Backend, n)
	for i := range out {
		out[i] = &Backend{name: "b" + string(rune('0'+i)), url: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}}
	}
	return out
}

func names(bs []*Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.name
	}
	return out
}

func TestNewPolicy(t *testing.T) {
	for _, name := range []string{PolicyRoundRobin, PolicyLeastConn, PolicyP2C} {
		if _, err := NewPolicy(name); err != nil {
			t.Errorf("NewPolicy(%q): %v", name, err)
		}
	}
	if _, err := NewPolicy("random"); err == nil {
		t.Error("NewPolicy(random): got nil error, want one")
	}
}

func TestRoundRobin(t *testing.T) {
	bs := testBackends(3)
	p, _ := NewPolicy(PolicyRoundRobin)
	var got []string
	for range 6 {
		got = append(got, p.Pick(bs).name)
	}
	want := []string{"b0", "b1", "b2", "b0", "b1", "b2"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("picks %v, want %v", got, want)
		}
	}
}

func TestLeastConn(t *testing.T) {
	tests := []struct {
		name     string
		inFlight []int64
		want     []string // successive picks (counts unchanged between picks)
	}{
		{"one least", []int64{3, 1, 2}, []string{"b1", "b1"}},
		{"ties round-robin", []int64{1, 4, 1}, []string{"b0", "b2", "b0", "b2"}},
		{"all equal", []int64{0, 0, 0}, []string{"b0", "b1", "b2", "b0"}},
		{"single", []int64{7}, []string{"b0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := testBackends(len(tt.inFlight))
			for i, n := range tt.inFlight {
				bs[i].inFlight.Store(n)
			}
			p, _ := NewPolicy(PolicyLeastConn)
			for i, want := range tt.want {
				if got := p.Pick(bs).name; got != want {
					t.Errorf("pick %d: got %s, want %s", i, got, want)
				}
			}
		})
	}
}

func TestP2C(t *testing.T) {
	tests := []struct {
		name     string
		inFlight []int64
		latency  []time.Duration
		rnd      []int // successive values of the fake rand
		want     string
	}{
		{"fewer in flight wins", []int64{5, 1, 9}, nil, []int{0, 0}, "b1"},            // i=0, j=0->1
		{"second choice skips first", []int64{5, 1, 0}, nil, []int{1, 1}, "b2"},       // i=1, j=1->2
		{"tie keeps first", []int64{2, 2}, nil, []int{1, 0}, "b1"},                    // i=1, j=0
		{"latency counts", []int64{1, 1}, []time.Duration{50, 10}, []int{0, 0}, "b1"}, // cost 2x50 vs 2x10
		{"in flight times latency", []int64{0, 3}, []time.Duration{50, 10}, []int{0, 0}, "b1"},
		{"no latency sample: in flight only", []int64{0, 3}, []time.Duration{0, 10}, []int{0, 0}, "b0"},
		{"single", []int64{4}, nil, nil, "b0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := testBackends(len(tt.inFlight))
			for i := range bs {
				bs[i].inFlight.Store(tt.inFlight[i])
				if tt.latency != nil {
					bs[i].ewmaNS.Store(int64(tt.latency[i]))
				}
			}
			calls := 0
			rnd := func(n int) int {
				v := tt.rnd[calls]
				calls++
				if v >= n {
					t.Fatalf("fake rand gave %d for n=%d", v, n)
				}
				return v
			}
			p, err := NewPolicy(PolicyP2C, rnd)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Pick(bs).name; got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLatencyEWMA(t *testing.T) {
	b := testBackends(1)[0]
	b.observeLatency(100 * time.Millisecond)
	if got := b.Latency(); got != 100*time.Millisecond {
		t.Fatalf("first sample: got %v, want 100ms", got)
	}
	b.observeLatency(200 * time.Millisecond)
	if got := b.Latency(); got != 120*time.Millisecond {
		t.Errorf("second sample: got %v, want 120ms", got)
	}
}
