package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"
)

// Default bounds of the CLI's calls (lb's flags -connect-timeout and -call-timeout).
const (
	// DefaultConnectTimeout bounds the TCP connect and the TLS handshake to an admin
	// listener: on a LAN both take well under a millisecond, so a host that drops packets
	// is found out in seconds, not after the kernel's two minutes.
	DefaultConnectTimeout = 3 * time.Second
	// DefaultCallTimeout bounds one call, connect to the end of the answer: the admin API
	// answers in milliseconds, so this is for an lb that accepted the connection and then
	// said nothing (frozen, or its admin listener wedged). Long waits (drain -wait,
	// rollout) are loops of such short calls.
	DefaultCallTimeout = 10 * time.Second
	// defaultDrainTimeout is lb's default drain_timeout: how long DELETE may take.
	defaultDrainTimeout = 30 * time.Second
)

// NoAnswerError is a call that an lb did not answer in time.
type NoAnswerError struct {
	// Connected is false when no connection was made within the bound (the host is
	// down, or something drops the packets), true when the lb accepted the connection
	// and then sent no (complete) answer (lb frozen, or its admin listener wedged).
	Connected bool
	// After is the bound that ran out.
	After time.Duration
}

// Error implements error.
func (e *NoAnswerError) Error() string {
	within := "in time"
	if e.After > 0 {
		within = "within " + e.After.String()
	}
	if e.Connected {
		return "no answer " + within + ": it accepted the connection and then said nothing (lb frozen or overloaded?)"
	}
	return "no connection " + within + " (host down, or a firewall drops the packets?)"
}

// Timeout reports true, as the net package's timeouts do.
func (e *NoAnswerError) Timeout() bool { return true }

// NewHTTPClient returns an http.Client for the admin API whose connects (TCP and TLS)
// give up after connect; tlsConf may be nil (the system's roots). A call's overall
// bound is the Client's CallTimeout.
func NewHTTPClient(connect time.Duration, tlsConf *tls.Config) *http.Client {
	if connect <= 0 {
		connect = DefaultConnectTimeout
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   connect,
		TLSClientConfig:       tlsConf,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// callContext bounds one call by within (none if 0) and reports, through the
// returned trace, whether a connection was obtained.
func callContext(ctx context.Context, within time.Duration) (context.Context, context.CancelFunc, *atomic.Bool) {
	var connected atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { connected.Store(true) },
	})
	if within <= 0 {
		ctx, cancel := context.WithCancel(ctx)
		return ctx, cancel, &connected
	}
	ctx, cancel := context.WithTimeout(ctx, within)
	return ctx, cancel, &connected
}

// callError turns err from a call bounded by within into a *NoAnswerError when it is
// that bound, or the connect bound, that ran out. When the caller's own context ended,
// err stays as it is: the caller asked to stop, and may be waiting for exactly that.
func (c *Client) callError(parent, call context.Context, within time.Duration, connected bool, err error) error {
	if parent.Err() != nil {
		return err
	}
	if errors.Is(call.Err(), context.DeadlineExceeded) {
		return &NoAnswerError{Connected: connected, After: within}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" && op.Timeout() {
		return &NoAnswerError{Connected: false, After: c.ConnectTimeout}
	}
	return err
}
