package balancer

import (
	"testing"
	"time"
)

// LastChange moves when state or health changes, and only then: a repeated
// drain, enable or health report keeps it.
func TestLastChange(t *testing.T) {
	p, _ := newTestPool(t)
	before := time.Now()
	st, err := p.Add("app-1", "http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if st.LastChange.Before(before) || st.LastChange.After(time.Now()) {
		t.Fatalf("LastChange of a new backend %v, want its creation time", st.LastChange)
	}
	last := st.LastChange
	steps := []struct {
		name   string
		op     func()
		change bool
	}{
		{"up", func() { p.SetHealthy("app-1", true) }, true},
		{"up again", func() { p.SetHealthy("app-1", true) }, false},
		{"drain", func() { _, _ = p.Drain("app-1") }, true},
		{"drain again", func() { _, _ = p.Drain("app-1") }, false},
		{"a check report", func() { p.ReportCheck("app-1", true, true, 3, time.Now(), "", "v1") }, false},
		{"enable", func() { _, _ = p.Enable("app-1") }, true},
		{"enable again", func() { _, _ = p.Enable("app-1") }, false},
		{"down", func() { p.SetHealthy("app-1", false) }, true},
	}
	for _, s := range steps {
		s.op()
		got, err := p.Get("app-1")
		if err != nil {
			t.Fatal(err)
		}
		if moved := !got.LastChange.Equal(last); moved != s.change {
			t.Errorf("%s: LastChange moved %t, want %t", s.name, moved, s.change)
		}
		last = got.LastChange
	}
}
