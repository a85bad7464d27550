package frontend

import (
	"testing"
	"time"
)

// TestConnLimiterFull: Full is set only while an accept waits for a slot (every one held),
// not merely because every slot is taken (an accept takes its slot before Accept).
func TestConnLimiterFull(t *testing.T) {
	l := NewConnLimiter(1)
	if !l.acquire() {
		t.Fatal("first acquire failed")
	}
	if l.Full() {
		t.Error("Full with every slot held but nobody waiting, want false")
	}
	got := make(chan bool, 1)
	go func() { got <- l.acquire() }()
	deadline := time.Now().Add(5 * time.Second)
	for !l.Full() {
		if time.Now().After(deadline) {
			t.Fatal("Full not set while an acquire waits")
		}
		time.Sleep(time.Millisecond)
	}
	l.release()
	if !<-got {
		t.Fatal("the waiting acquire failed after a release")
	}
	if l.Full() {
		t.Error("Full after the waiter got its slot, want false")
	}
	l.Close()
}
