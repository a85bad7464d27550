// Package frontend is the client side of lb: the listeners (TLS with ALPN, the connection
// limit, hot settings on reload), protocol hygiene, lb's own HTTP/1.1 connection loop, and the
// hand-off to net/http for HTTP/2 and for what the loop does not take.
//
// Every HTTP/1 request is framed by package h1, on whichever path serves it: lb's loop
// parses it itself; net/http (HTTP/2, LB_FAST_PATH=off, the admin API) reads HTTP/1 only
// through a gate that applies h1's rules first. Both paths forward through the one
// forwarding loop in package balancer (Proxy.Forward), as thin adapters: lb's loop
// (loop.go, conn.go, answer.go, body.go, watch.go) and the net/http handler (nethttp.go,
// nethttpclient.go).
package frontend
