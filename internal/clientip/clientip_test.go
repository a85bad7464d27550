package clientip

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func request(remote string, xff ...string) *http.Request {
	r, _ := http.NewRequest("GET", "http://example.test/", nil)
	r.RemoteAddr = remote
	for _, v := range xff {
		r.Header.Add("X-Forwarded-For", v)
	}
	return r
}

func mustResolver(t *testing.T, cidrs ...string) *Resolver {
	t.Helper()
	r, err := NewResolver(cidrs)
	if err != nil {
		t.Fatalf("NewResolver(%q): %v", cidrs, err)
	}
	return r
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		remote  string
		xff     []string
		want    string
	}{
		{"untrusted peer, no header", nil, "203.0.113.7:5555", nil, "203.0.113.7"},
		{"untrusted peer forges XFF", nil, "203.0.113.7:5555", []string{"1.2.3.4"}, "203.0.113.7"},
		{"untrusted peer forges XFF with trusted list", []string{"10.0.0.0/8"}, "203.0.113.7:5555", []string{"10.0.0.1"}, "203.0.113.7"},
		{"trusted peer, client in XFF", []string{"10.0.0.0/8"}, "10.0.0.2:40000", []string{"198.51.100.9"}, "198.51.100.9"},
		{"client forged a prefix, lb appended the real one", []string{"10.0.0.0/8"}, "10.0.0.2:40000", []string{"6.6.6.6, 198.51.100.9"}, "198.51.100.9"},
		{"chain of trusted proxies", []string{"10.0.0.0/8", "192.0.2.1"}, "10.0.0.2:40000", []string{"198.51.100.9, 192.0.2.1, 10.0.0.5"}, "198.51.100.9"},
		{"several header lines folded", []string{"10.0.0.0/8"}, "10.0.0.2:1", []string{"6.6.6.6", "198.51.100.9, 10.1.1.1"}, "198.51.100.9"},
		{"all hops trusted: leftmost", []string{"10.0.0.0/8"}, "10.0.0.2:1", []string{"10.9.9.9, 10.1.1.1"}, "10.9.9.9"},
		{"trusted peer, no header", []string{"127.0.0.1"}, "127.0.0.1:3333", nil, "127.0.0.1"},
		{"malformed entry stops the walk", []string{"10.0.0.0/8"}, "10.0.0.2:1", []string{"198.51.100.9, garbage, 10.1.1.1"}, "10.1.1.1"},
		{"malformed rightmost: peer", []string{"10.0.0.0/8"}, "10.0.0.2:1", []string{"198.51.100.9, nope"}, "10.0.0.2"},
		{"entry with port", []string{"10.0.0.0/8"}, "10.0.0.2:1", []string{"198.51.100.9:1234"}, "198.51.100.9"},
		{"IPv6 peer", nil, "[2001:db8::1]:443", nil, "2001:db8::1"},
		{"IPv6 in XFF, bracketed with port", []string{"::1"}, "[::1]:8080", []string{"[2001:db8::5]:9"}, "2001:db8::5"},
		{"IPv6 in XFF bare", []string{"::1/128"}, "[::1]:8080", []string{"2001:db8::5"}, "2001:db8::5"},
		{"IPv4-mapped peer matches IPv4 prefix", []string{"127.0.0.0/8"}, "[::ffff:127.0.0.1]:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"IPv4-mapped hop is unmapped", []string{"127.0.0.0/8"}, "127.0.0.1:80", []string{"::ffff:198.51.100.9"}, "198.51.100.9"},
		{"IPv4-mapped prefix", []string{"::ffff:10.0.0.0/104"}, "10.0.0.2:1", []string{"198.51.100.9"}, "198.51.100.9"},
		{"empty entries are malformed", []string{"10.0.0.0/8"}, "10.0.0.2:1", []string{"198.51.100.9,,"}, "10.0.0.2"},
		{"bad RemoteAddr", nil, "not-an-addr", nil, "invalid IP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustResolver(t, tc.trusted...)
			got := r.ClientIP(request(tc.remote, tc.xff...)).String()
			if got != tc.want {
				t.Errorf("ClientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestForwardedFor(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		remote  string
		xff     []string
		want    string
	}{
		{"untrusted client's chain is dropped", nil, "203.0.113.7:5555", []string{"1.2.3.4, 5.6.7.8"}, "203.0.113.7"},
		{"no header", nil, "203.0.113.7:5555", nil, "203.0.113.7"},
		{"trusted peer's chain is kept", []string{"10.0.0.0/8"}, "10.0.0.2:1", []string{"198.51.100.9"}, "198.51.100.9, 10.0.0.2"},
		{"lines folded and normalised", []string{"10.0.0.0/8"}, "10.0.0.2:1", []string{"198.51.100.9:80", " [2001:db8::1]:9 "}, "198.51.100.9, 2001:db8::1, 10.0.0.2"},
		{"cut at malformed entry", []string{"10.0.0.0/8"}, "10.0.0.2:1", []string{"1.1.1.1, bad, 198.51.100.9"}, "198.51.100.9, 10.0.0.2"},
		{"IPv6 peer", nil, "[2001:db8::1]:443", nil, "2001:db8::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustResolver(t, tc.trusted...)
			if got := r.ForwardedFor(request(tc.remote, tc.xff...)); got != tc.want {
				t.Errorf("ForwardedFor = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNilResolverTrustsNobody(t *testing.T) {
	var r *Resolver
	req := request("127.0.0.1:1", "1.2.3.4")
	if got := r.ClientIP(req).String(); got != "127.0.0.1" {
		t.Errorf("ClientIP = %q, want 127.0.0.1", got)
	}
	if got := r.ForwardedFor(req); got != "127.0.0.1" {
		t.Errorf("ForwardedFor = %q, want 127.0.0.1", got)
	}
}

func TestNewResolverErrors(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "hello", "10.0.0.1/x", "::ffff:1.2.3.4/90"} {
		if _, err := NewResolver([]string{"127.0.0.1", bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("NewResolver(%q) error = %v, want one naming the entry", bad, err)
		}
	}
	r := mustResolver(t, " 10.0.0.0/8 ", "", "192.0.2.1")
	if !r.Trusted(netip.MustParseAddr("10.200.0.1")) || !r.Trusted(netip.MustParseAddr("192.0.2.1")) || r.Trusted(netip.MustParseAddr("192.0.2.2")) {
		t.Errorf("Trusted gives wrong answers for %v", r.trusted)
	}
}

func TestRemoveSpoofable(t *testing.T) {
	h := http.Header{}
	h.Set("Forwarded", "for=1.2.3.4")
	h.Set("X-Real-IP", "1.2.3.4")
	h["X_Forwarded_For"] = []string{"1.2.3.4"}
	h["X_real_ip"] = []string{"1.2.3.4"}
	h["X_forwarded_proto"] = []string{"http"}
	h.Set("X-Forwarded-For", "5.6.7.8")
	h.Set("Accept", "*/*")
	h["Some_other"] = []string{"kept"}
	RemoveSpoofable(h)
	for _, k := range []string{"Forwarded", "X-Real-Ip", "X_Forwarded_For", "X_real_ip", "X_forwarded_proto"} {
		if _, ok := h[k]; ok {
			t.Errorf("header %q kept, want it removed", k)
		}
	}
	for _, k := range []string{"X-Forwarded-For", "Accept", "Some_other"} {
		if _, ok := h[k]; !ok {
			t.Errorf("header %q removed, want it kept", k)
		}
	}
}

func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.2:1", "198.51.100.9, 10.1.1.1")
	f.Add("[::1]:8080", "[2001:db8::5]:9,,x")
	f.Add("203.0.113.7:5555", "::ffff:1.2.3.4")
	r, err := NewResolver([]string{"10.0.0.0/8", "::1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		req := request(remote, xff)
		got := r.ClientIP(req)
		peer := PeerAddr(req)
		if !r.Trusted(peer) && got != peer {
			t.Fatalf("untrusted peer %v: ClientIP = %v, want the peer", peer, got)
		}
		if got.IsValid() && got.Is4In6() {
			t.Fatalf("ClientIP returned a mapped address %v", got)
		}
		chain := r.ForwardedFor(req)
		for part := range strings.SplitSeq(chain, ", ") {
			if part == "" && chain == "" {
				continue
			}
			if _, err := netip.ParseAddr(part); err != nil {
				t.Fatalf("ForwardedFor = %q has unparseable entry %q", chain, part)
			}
		}
		if peer.IsValid() && !strings.HasSuffix(chain, peer.String()) {
			t.Fatalf("ForwardedFor = %q does not end with the peer %v", chain, peer)
		}
	})
}
