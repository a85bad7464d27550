package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// In-process sockets on a host. Each is created by a thread that has entered the host's
// network namespace and gone back at once (see netns.do); the socket stays in the host's
// namespace for life, so a test's own client or server takes part as that host. The lab
// has no DNS: addresses are IP literals.

// DialContext connects to address (an IP literal and port, e.g. "198.18.0.3:443") from
// the host, as net.Dialer.DialContext does; network is "tcp", "tcp4", "udp" or "udp4". It
// fits http.Transport.DialContext.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if _, err := netip.ParseAddrPort(address); err != nil {
		return nil, fmt.Errorf("lab: dial %s from %s: want an IP literal and a port (the lab has no DNS): %w", address, h.name, err)
	}
	var d net.Dialer
	// With one literal address the dialer makes its socket on this goroutine: no
	// happy-eyeballs racer runs elsewhere.
	return inHost(h, func() (net.Conn, error) { return d.DialContext(ctx, network, address) })
}

// Listen listens on address (e.g. ":8080", or the host's address and a port) in the host,
// as net.Listen does, for "tcp" or "tcp4". Connections it accepts are the host's too.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	return inHost(h, func() (net.Listener, error) { return net.Listen(network, address) })
}

// ListenPacket is net.ListenPacket in the host, for "udp" or "udp4".
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	return inHost(h, func() (net.PacketConn, error) { return net.ListenPacket(network, address) })
}

// inHost runs fn in the host's network namespace (see netns.do) and returns its result.
func inHost[T any](h *Host, fn func() (T, error)) (T, error) {
	var v T
	err := h.ns.do(func() error {
		var err error
		v, err = fn()
		return err
	})
	if err != nil {
		var zero T
		return zero, fmt.Errorf("lab: on %s: %w", h.name, err)
	}
	return v, nil
}

// HTTPTransport is an http.Transport whose connections start from the host: a clone of
// http.DefaultTransport with no proxy, DialContext set to the host's and a 5 s TLS
// handshake timeout. Set TLSClientConfig for HTTPS. Close its idle connections when done.
func (h *Host) HTTPTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = h.DialContext
	t.DialTLSContext = nil
	t.TLSHandshakeTimeout = 5 * time.Second
	t.MaxIdleConnsPerHost = 100
	return t
}

// HTTPClient is an http.Client on a new HTTPTransport of the host, with the given overall
// request timeout (0: none).
func (h *Host) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Transport: h.HTTPTransport(), Timeout: timeout}
}

// RefusalWindow dials addr from h every 10 ms until stop is closed and then sends how long
// connections were refused: from the first refusal seen to the last, plus one interval
// (0: none). Dials that time out or succeed do not count; it measures how long a host that
// lost its server still held the address.
func (h *Host) RefusalWindow(addr string, stop <-chan struct{}) <-chan time.Duration {
	const every = 10 * time.Millisecond
	out := make(chan time.Duration, 1)
	go func() {
		var first, last time.Time
		for {
			select {
			case <-stop:
				if first.IsZero() {
					out <- 0
				} else {
					out <- last.Sub(first) + every
				}
				return
			case <-time.After(every):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			c, err := h.DialContext(ctx, "tcp", addr)
			cancel()
			if err == nil {
				c.Close()
				continue
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				if first.IsZero() {
					first = time.Now()
				}
				last = time.Now()
			}
		}
	}()
	return out
}
