package lbtest

import (
	"net"
	"sync"
	"testing"
)

// SilentServer listens on loopback, accepts every connection, reads what
// comes and never answers: an lb whose admin listener is wedged, or a frozen
// lb whose kernel still completes the handshake. It returns the base URL
// (http://127.0.0.1:PORT); the test's end closes it and its connections.
func SilentServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = c.Read(make([]byte, 64<<10)) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}
