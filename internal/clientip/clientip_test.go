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
			if got := r.ClientIPFrom(AddrFromRemote(tc.remote), tc.xff).String(); got != tc.want {
				t.Errorf("ClientIPFrom = %q, want %q", got, tc.want)
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
		{"cut at malformed line", []string{"10.0.0.0/8"}, "10.0.0.2:1", []string{"1.1.1.1", "2.2.2.2, bad", "3.3.3.3, 4.4.4.4", "5.5.5.5"}, "3.3.3.3, 4.4.4.4, 5.5.5.5, 10.0.0.2"},
		{"cut at empty line", []string{"10.0.0.0/8"}, "10.0.0.2:1", []string{"1.1.1.1", "", "5.5.5.5"}, "5.5.5.5, 10.0.0.2"},
		{"malformed rightmost", []string{"10.0.0.0/8"}, "10.0.0.2:1", []string{"1.1.1.1, bad"}, "10.0.0.2"},
		{"trusted peer, no header", []string{"10.0.0.0/8"}, "10.0.0.2:1", nil, "10.0.0.2"},
		{"bad RemoteAddr", nil, "nope", []string{"1.1.1.1"}, ""},
		{"IPv6 peer", nil, "[2001:db8::1]:443", nil, "2001:db8::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustResolver(t, tc.trusted...)
			if got := r.ForwardedFor(request(tc.remote, tc.xff...)); got != tc.want {
				t.Errorf("ForwardedFor = %q, want %q", got, tc.want)
			}
			if got := r.ForwardedForFrom(AddrFromRemote(tc.remote), tc.xff); got != tc.want {
				t.Errorf("ForwardedForFrom = %q, want %q", got, tc.want)
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
	f.Add("10.0.0.2:1", "1.1.1.1\n\n10.0.0.3, 198.51.100.9")
	f.Add("10.0.0.2:1", "X_Real_IP")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		var lines []string // a newline in the input separates header lines
		if xff != "" {
			lines = strings.Split(xff, "\n")
		}
		req := request(remote, lines...)
		if got, want := r.ClientIP(req), oldClientIP(r, req); got != want {
			t.Fatalf("ClientIP = %v, want %v as before", got, want)
		}
		if got, want := r.ForwardedFor(req), oldForwardedFor(r, req); got != want {
			t.Fatalf("ForwardedFor = %q, want %q as before", got, want)
		}
		if got, want := SpoofableAlias([]byte(xff)), oldSpoofableAlias(xff); got != want {
			t.Fatalf("SpoofableAlias(%q) = %v, want %v as before", xff, got, want)
		}
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

// oldClientIP, oldForwardedFor and oldForwardedHops are ClientIP and
// ForwardedFor as they were before the From variants: the oracle for them.
func oldClientIP(r *Resolver, req *http.Request) netip.Addr {
	peer := PeerAddr(req)
	if !r.Trusted(peer) {
		return peer
	}
	client := peer
	hops := oldForwardedHops(req.Header)
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

func oldForwardedFor(r *Resolver, req *http.Request) string {
	peer := PeerAddr(req)
	peerText := ""
	if peer.IsValid() {
		peerText = peer.String()
	}
	if !r.Trusted(peer) {
		return peerText
	}
	hops := oldForwardedHops(req.Header)
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

func oldForwardedHops(h http.Header) []string {
	var hops []string
	for _, line := range h.Values("X-Forwarded-For") {
		for part := range strings.SplitSeq(line, ",") {
			hops = append(hops, strings.TrimSpace(part))
		}
	}
	return hops
}

func TestFromNormalisesPeer(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8", "fe80::/10")
	xff := []string{"198.51.100.9"}
	tests := []struct {
		peer, want, wantChain string
	}{
		{"::ffff:10.0.0.2", "198.51.100.9", "198.51.100.9, 10.0.0.2"},
		{"::ffff:203.0.113.7", "203.0.113.7", "203.0.113.7"},
		{"fe80::1%eth0", "198.51.100.9", "198.51.100.9, fe80::1"},
	}
	for _, tc := range tests {
		peer := netip.MustParseAddr(tc.peer)
		if got := r.ClientIPFrom(peer, xff).String(); got != tc.want {
			t.Errorf("ClientIPFrom(%s) = %q, want %q", tc.peer, got, tc.want)
		}
		if got := r.ForwardedForFrom(peer, xff); got != tc.wantChain {
			t.Errorf("ForwardedForFrom(%s) = %q, want %q", tc.peer, got, tc.wantChain)
		}
	}
	if got := r.ClientIPFrom(netip.Addr{}, xff); got.IsValid() {
		t.Errorf("ClientIPFrom(zero Addr) = %q, want the zero Addr", got)
	}
}

func TestAddrFromRemote(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"203.0.113.7:5555", "203.0.113.7"},
		{"203.0.113.7", "203.0.113.7"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"[2001:db8::1]", "2001:db8::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"[::ffff:127.0.0.1]:80", "127.0.0.1"},
		{"[fe80::1%eth0]:80", "fe80::1"},
		{" 192.0.2.1:1 ", "192.0.2.1"},
		{"example.com:80", "invalid IP"},
		{"", "invalid IP"},
		{"@", "invalid IP"},
	}
	for _, tc := range tests {
		if got := AddrFromRemote(tc.remote).String(); got != tc.want {
			t.Errorf("AddrFromRemote(%q) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}

// oldSpoofableAlias is the check RemoveSpoofable made before SpoofableAlias.
func oldSpoofableAlias(name string) bool {
	if !strings.Contains(name, "_") {
		return false
	}
	norm := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	for _, s := range spoofable {
		if norm == s {
			return true
		}
	}
	return false
}

func TestSpoofableAlias(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"x_forwarded_for", true},
		{"X_Forwarded_For", true},
		{"X_REAL_IP", true},
		{"x_real_ip", true},
		{"X_Forwarded_Host", true},
		{"x_forwarded_proto", true},
		{"x_client_ip", true},
		{"true_client_ip", true},
		{"TRUE_CLIENT_IP", true},
		{"x_forwarded-for", true}, // mixed: still contains '_'
		{"X_REAL_\u0130P", true},  // strings.ToLower lowers 'İ' to 'i'
		{"x-forwarded-for", false},
		{"X-Real-Ip", false},
		{"forwarded", false},
		{"x_forwarded", false},
		{"x_forwarded_fo", false},
		{"x_forwarded_forr", false},
		{"x_forwarded_for ", false},
		{"some_other", false},
		{"_", false},
		{"", false},
		{"x_real_ip\xff", false},
		{"x_real_\xffp", false},
	}
	for _, tc := range tests {
		if got := SpoofableAlias([]byte(tc.name)); got != tc.want {
			t.Errorf("SpoofableAlias(%q) = %v, want %v", tc.name, got, tc.want)
		}
		if old := oldSpoofableAlias(tc.name); old != tc.want {
			t.Errorf("old check on %q = %v, want %v", tc.name, old, tc.want)
		}
	}
}

func TestFromVariantsAllocations(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8")
	peer := netip.MustParseAddr("10.0.0.2")
	xff := []string{"6.6.6.6", "198.51.100.9, 10.1.1.1"}
	name := []byte("X_Forwarded_For")
	if n := testing.AllocsPerRun(100, func() { _, _ = r.ClientIPFrom(peer, xff), SpoofableAlias(name) }); n != 0 {
		t.Errorf("ClientIPFrom and SpoofableAlias allocate %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = r.ForwardedForFrom(peer, xff) }); n != 1 {
		t.Errorf("ForwardedForFrom allocates %v times, want 1 (its result)", n)
	}
}
