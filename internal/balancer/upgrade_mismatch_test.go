package balancer_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	. "outrigger/internal/balancer"
	"testing"
	"time"
)

// A backend that switches to another protocol than the client asked for gets its connection
// closed (it is in no pool, with no idle timeout: it would leak), and the attempt fails.
func TestUpgradeMismatchClosesBackendConnection(t *testing.T) {
	forEachFront(t, func(t *testing.T, front frontKind) {
		closed := make(chan struct{}, 4)
		addr := RawBackend(t, func(c net.Conn, br *bufio.Reader) {
			defer c.Close()
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
			_, _ = io.Copy(io.Discard, br) // until lb closes its side
			closed <- struct{}{}
		})
		r := newRig(t, front, defaultConfig(), PolicyRoundRobin, "http://"+addr)
		conn, err := net.Dial("tcp", r.front.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusBadGateway {
			t.Errorf("got %d, want 502", res.StatusCode)
		}
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("lb never closed the backend connection that switched to the wrong protocol")
		}
		if st, _ := r.pool.Get("b0"); st.InFlight != 0 || st.Upgraded != 0 {
			t.Errorf("in flight %d upgraded %d, want 0 and 0", st.InFlight, st.Upgraded)
		}
	})
}
