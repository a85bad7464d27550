// Package clientip works out the real client address of an HTTP request.
//
// A request's peer is believed as it is, unless the peer is one of the
// configured trusted proxies; then X-Forwarded-For is read from right to left
// and the first hop that is not a trusted proxy is the client. Both the load
// balancer (to build the header it sends on) and the app (to log the real
// client) use it.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver decides which request addresses to believe, given trusted proxy prefixes.
// A nil *Resolver trusts nobody.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver parses CIDRs (or bare IP addresses) of trusted proxies.
func NewResolver(cidrs []string) (*Resolver, error) {
	r := &Resolver{}
	for _, s := range cidrs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		r.trusted = append(r.trusted, p)
	}
	return r, nil
}

// ParsePrefix parses a CIDR or a bare IP address (taken as a single-address prefix).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("trusted proxy %q: not a CIDR: %w", s, err)
		}
		if p.Addr().Is4In6() {
			bits := p.Bits() - 96
			if bits < 0 {
				return netip.Prefix{}, fmt.Errorf("trusted proxy %q: IPv4-mapped prefix shorter than /96", s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), bits)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("trusted proxy %q: not an IP address or CIDR: %w", s, err)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Trusted reports whether a is a trusted proxy address.
func (r *Resolver) Trusted(a netip.Addr) bool {
	if r == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// PeerAddr returns the address of the connection's peer (RemoteAddr) without
// its port, IPv4-mapped addresses unmapped. It is the zero Addr if RemoteAddr
// cannot be parsed.
func PeerAddr(req *http.Request) netip.Addr {
	return parseHop(req.RemoteAddr)
}

// ClientIP returns the real client address of req: its peer unless the peer
// is trusted; then the X-Forwarded-For chain (every header line folded
// together) walked from right to left, the first untrusted hop winning. A
// malformed entry stops the walk at the last good hop.
func (r *Resolver) ClientIP(req *http.Request) netip.Addr {
	peer := PeerAddr(req)
	if !r.Trusted(peer) {
		return peer
	}
	client := peer
	hops := forwardedHops(req.Header)
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHop(hops[i])
		if !a.IsValid() {
			return client
		}
		client = a
		if !r.Trusted(a) {
			return a
		}
	}
	return client
}

// ForwardedFor returns the X-Forwarded-For value to send upstream: the chain
// the client sent is kept only when the peer is a trusted proxy, then the peer
// is appended. Entries of a kept chain are normalised (ports dropped,
// addresses unmapped); the chain is cut at the first malformed entry from the
// right, so nothing unparseable is passed on.
func (r *Resolver) ForwardedFor(req *http.Request) string {
	peer := PeerAddr(req)
	peerText := ""
	if peer.IsValid() {
		peerText = peer.String()
	}
	if !r.Trusted(peer) {
		return peerText
	}
	hops := forwardedHops(req.Header)
	start := len(hops)
	for start > 0 && parseHop(hops[start-1]).IsValid() {
		start--
	}
	var b strings.Builder
	for _, h := range hops[start:] {
		b.WriteString(parseHop(h).String())
		b.WriteString(", ")
	}
	b.WriteString(peerText)
	return b.String()
}

// spoofable lists, in lower case with dashes, the headers a client could use
// to claim another address; RemoveSpoofable also drops their underscore
// spellings.
var spoofable = []string{"forwarded", "x-real-ip", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-client-ip", "true-client-ip"}

// RemoveSpoofable deletes Forwarded and X-Real-IP, and the underscore
// variants of every forwarding header (X_Forwarded_For and so on), which some
// servers treat as their dashed twins. X-Forwarded-* themselves are left to
// the caller, which rebuilds them.
func RemoveSpoofable(h http.Header) {
	h.Del("Forwarded")
	h.Del("X-Real-Ip")
	h.Del("X-Client-Ip")
	h.Del("True-Client-Ip")
	for k := range h {
		if !strings.Contains(k, "_") {
			continue
		}
		norm := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		for _, s := range spoofable {
			if norm == s {
				delete(h, k)
				break
			}
		}
	}
}

// forwardedHops folds every X-Forwarded-For line into one list of entries.
func forwardedHops(h http.Header) []string {
	lines := h.Values("X-Forwarded-For")
	if len(lines) == 0 {
		return nil
	}
	var hops []string
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ",") {
			hops = append(hops, strings.TrimSpace(part))
		}
	}
	return hops
}

// parseHop parses one address as found in RemoteAddr or X-Forwarded-For:
// "1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80" or "[::1]".
func parseHop(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone("")
		}
		return netip.Addr{}
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	return netip.Addr{}
}
