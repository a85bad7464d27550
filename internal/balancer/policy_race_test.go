package balancer

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// LeastConn reads the in-flight counts while other requests change them. When the first
// candidate's count rises between the read that seeds the minimum and the counting loop, and
// every other candidate is above that minimum, no candidate ties with it: Pick must still
// return a candidate (it used to divide by a tie count of zero and panic the handler).
func TestLeastConnCountsChangingUnderPick(t *testing.T) {
	bs := testBackends(3)
	bs[1].acquire()
	bs[2].acquire()
	p := &LeastConn{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			bs[0].acquire() // 0 -> 1 -> 0: at times above every other candidate's minimum
			bs[0].release()
		}
	})
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	pick := func() (b *Backend, err error) {
		defer func() {
			if rec := recover(); rec != nil {
				err = fmt.Errorf("panic: %v", rec)
			}
		}()
		return p.Pick(bs), nil
	}
	for i := range 300000 {
		b, err := pick()
		if err != nil {
			t.Fatalf("pick %d: %v", i, err)
		}
		if b == nil {
			t.Fatalf("pick %d: got nil, want a candidate", i)
		}
	}
}
