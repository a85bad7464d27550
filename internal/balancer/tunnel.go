package balancer

import (
	"io"

	"outrigger/internal/h1"
)

// tunnel joins the client's connection to bc after a 101 went to the client: bytes flow both
// ways until either side closes, then both are closed. The client connection counts as
// upgraded on b meanwhile (and Pool.CloseUpgraded ends the tunnel at drain_timeout).
func (st *Forwarding) tunnel(b *Backend, bc *backendConn, client Client) {
	conn, buffered, err := client.Upgrade()
	if err != nil {
		_ = bc.c.Close()
		return
	}
	uc := b.trackUpgraded(conn)
	defer uc.Close()
	defer bc.c.Close()
	fromBackend := bc.rd.Buffered()
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if len(buffered) > 0 {
			if _, err := bc.c.Write(buffered); err != nil {
				return
			}
		}
		_, _ = io.Copy(bc.c, uc)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		if len(fromBackend) > 0 {
			if _, err := uc.Write(fromBackend); err != nil {
				return
			}
		}
		_, _ = io.Copy(uc, bc.c)
	}()
	<-done // one side is over: close both, which ends the other copy
	_ = uc.Close()
	_ = bc.c.Close()
	<-done
}

// upgradeMatches reports whether a 101's Upgrade value names the protocol the client asked
// for, and is printable ASCII (as httputil.ReverseProxy checks).
func upgradeMatches(asked string, got []byte) bool {
	for _, c := range got {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return len(got) > 0 && h1.EqualFold(got, asked)
}
