// Package clientip works out the real client address of an HTTP request.
//
// A request's peer is believed as it is, unless the peer is one of the
// configured trusted proxies; then X-Forwarded-For is read from right to left
// and the first hop that is not a trusted proxy is the client. Both the load
// balancer (to build the header it sends on) and the app (to log the real
// client) use it.
package clientip

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
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
	return AddrFromRemote(req.RemoteAddr)
}

// AddrFromRemote parses a RemoteAddr-style "host:port" (or a bare address)
// as PeerAddr does; a server holding a net.Conn can compute the peer once
// per connection with it.
func AddrFromRemote(remoteAddr string) netip.Addr {
	return parseHop(remoteAddr)
}

// ClientIP returns the real client address of req: its peer unless the peer
// is trusted; then the X-Forwarded-For chain (every header line folded
// together) walked from right to left, the first untrusted hop winning. A
// malformed entry stops the walk at the last good hop.
func (r *Resolver) ClientIP(req *http.Request) netip.Addr {
	return r.ClientIPFrom(PeerAddr(req), req.Header.Values("X-Forwarded-For"))
}

// ClientIPFrom is ClientIP for a peer address and the request's
// X-Forwarded-For field values (every line, in order). The peer is taken
// unmapped and without its zone, as AddrFromRemote returns it.
func (r *Resolver) ClientIPFrom(peer netip.Addr, xff []string) netip.Addr {
	peer = peer.Unmap().WithZone("")
	if !r.Trusted(peer) {
		return peer
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for {
			comma := strings.LastIndexByte(line, ',')
			a := parseHop(line[comma+1:])
			if !a.IsValid() {
				return client
			}
			client = a
			if !r.Trusted(a) {
				return a
			}
			if comma < 0 {
				break
			}
			line = line[:comma]
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
	return r.ForwardedForFrom(PeerAddr(req), req.Header.Values("X-Forwarded-For"))
}

// ForwardedForFrom is ForwardedFor for a peer address and the request's
// X-Forwarded-For field values (every line, in order). The peer is taken
// unmapped and without its zone, as AddrFromRemote returns it.
func (r *Resolver) ForwardedForFrom(peer netip.Addr, xff []string) string {
	peer = peer.Unmap().WithZone("")
	if !r.Trusted(peer) {
		if !peer.IsValid() {
			return ""
		}
		return peer.String()
	}
	// The kept chain is the run of well-formed entries at the right end:
	// it starts in line first, at byte from.
	first, from := len(xff), 0
scan:
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for end := len(line); ; {
			comma := strings.LastIndexByte(line[:end], ',')
			if !parseHop(line[comma+1 : end]).IsValid() {
				break scan
			}
			first, from = i, comma+1
			if comma < 0 {
				break
			}
			end = comma
		}
	}
	var buf [128]byte
	b := buf[:0]
	for i := first; i < len(xff); i++ {
		line := xff[i]
		if i == first {
			line = line[from:]
		}
		for part := range strings.SplitSeq(line, ",") {
			b = parseHop(part).AppendTo(b)
			b = append(b, ", "...)
		}
	}
	b = peer.AppendTo(b)
	return string(b)
}

// spoofable lists, in lower case with dashes, the headers a client could use
// to claim another address; RemoveSpoofable also drops their underscore
// spellings.
var spoofable = [...]string{"forwarded", "x-real-ip", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-client-ip", "true-client-ip"}

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
		if strings.IndexByte(k, '_') >= 0 && SpoofableAlias([]byte(k)) {
			delete(h, k)
		}
	}
}

// SpoofableAlias reports whether name is the underscore spelling of a
// forwarding header (x_forwarded_for, X_Real_IP, x_forwarded_proto, ..., in
// any case, underscores and dashes mixed): the names RemoveSpoofable deletes
// because they contain '_'. It does not allocate.
func SpoofableAlias(name []byte) bool {
	if bytes.IndexByte(name, '_') < 0 {
		return false
	}
	for _, s := range spoofable {
		if aliasOf(name, s) {
			return true
		}
	}
	return false
}

// aliasOf reports whether name, with '_' read as '-' and letters lowered as
// strings.ToLower lowers them, is the lower-case ASCII header name s.
func aliasOf(name []byte, s string) bool {
	i := 0
	for len(name) > 0 {
		r, size := rune(name[0]), 1
		switch {
		case r >= utf8.RuneSelf:
			r, size = utf8.DecodeRune(name)
			r = unicode.ToLower(r) // 'İ' is 'i' to strings.ToLower
		case 'A' <= r && r <= 'Z':
			r += 'a' - 'A'
		case r == '_':
			r = '-'
		}
		if i >= len(s) || r != rune(s[i]) {
			return false
		}
		name = name[size:]
		i++
	}
	return i == len(s)
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
