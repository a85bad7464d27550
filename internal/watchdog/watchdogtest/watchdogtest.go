// Package watchdogtest is a notify socket of a test's own: it stands where systemd's
// $NOTIFY_SOCKET would and records what a program sends there.
package watchdogtest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Socket receives sd_notify datagrams.
type Socket struct {
	// Path is the socket's file, for NOTIFY_SOCKET.
	Path string

	conn *net.UnixConn
	mu   sync.Mutex
	msgs []Message
}

// Message is one datagram and when it arrived.
type Message struct {
	At    time.Time
	State string
}

// New listens on a unixgram socket in a temporary directory until the test ends.
func New(t testing.TB) *Socket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	return listen(t, path, path)
}

// NewAbstract listens on an abstract unixgram socket (Path starts with '@', as systemd's
// NOTIFY_SOCKET often does) until the test ends.
func NewAbstract(t testing.TB) *Socket {
	t.Helper()
	name := fmt.Sprintf("outrigger-notify-%d-%d", os.Getpid(), time.Now().UnixNano())
	return listen(t, "@"+name, "\x00"+name)
}

func listen(t testing.TB, path, addr string) *Socket {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatalf("notify socket: %v", err)
	}
	s := &Socket{Path: path, conn: c}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, Message{At: time.Now(), State: string(buf[:n])})
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return s
}

// Count returns how many datagrams so far contained the line state (e.g. "WATCHDOG=1").
func (s *Socket) Count(state string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs {
		for _, line := range strings.Split(m.State, "\n") {
			if line == state {
				n++
				break
			}
		}
	}
	return n
}

// WaitCount waits up to timeout for at least n datagrams containing state; false if they
// did not come.
func (s *Socket) WaitCount(state string, n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for s.Count(state) < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// Messages returns a copy of every datagram so far.
func (s *Socket) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}
