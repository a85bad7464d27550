package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestServeProxiesAndSetsForwardedFor runs with lb's own HTTP/1 loop (the default) and with
// LB_FAST_PATH=off, where net/http serves every request: the listening line and
// Listener.HTTP1 say which, and Liveness counts the requests of either.
func TestServeProxiesAndSetsForwardedFor(t *testing.T) {
	for _, fast := range []string{"", "off"} {
		t.Run("LB_FAST_PATH="+fast, func(t *testing.T) {
			b1 := newBackend(t, "app-1", nil)
			b2 := newBackend(t, "app-2", nil)
			l := startLB(t, lbConfig{backends: []*testBackend{b1, b2}, env: map[string]string{"LB_FAST_PATH": fast}})
			l.waitHealthy("app-1", "app-2")
			proxiesAndSetsForwardedFor(t, l)
			want := "lb"
			if fast == "off" {
				want = "net/http"
			}
			if got := l.srv.public[0].HTTP1(); got != want {
				t.Errorf("HTTP/1 served by %s with LB_FAST_PATH=%q, want %s", got, fast, want)
			}
			if !strings.Contains(l.out.String(), `"http1":"`+want+`"`) {
				t.Errorf("no listening line says http1=%s", want)
			}
			if !strings.Contains(l.out.String(), `"http2":""`) {
				t.Errorf("no listening line says http2 is not served (a plain HTTP listener)")
			}
			if served := l.srv.public[0].Liveness().Served; served != 11 {
				t.Errorf("Liveness counts %d requests served, want 11", served)
			}
		})
	}
	_, errOut, code := runCLI(t, map[string]string{"LB_FAST_PATH": "maybe"}, "serve", "-config", "/nonexistent.yaml")
	if code != 2 || !strings.Contains(errOut, "LB_FAST_PATH") {
		t.Errorf("LB_FAST_PATH=maybe: exit %d %q, want 2 naming LB_FAST_PATH", code, errOut)
	}
}

func proxiesAndSetsForwardedFor(t *testing.T, l *runningLB) {

	seen := map[string]int{}
	for range 10 {
		code, body, _ := l.get(t, "/hello", nil)
		if code != 200 {
			t.Fatalf("GET /hello: got %d, want 200 (%s)", code, body)
		}
		name, xff, _ := strings.Cut(body, " ")
		seen[name]++
		if xff != "xff=127.0.0.1" {
			t.Errorf("backend saw %q, want xff=127.0.0.1", xff)
		}
	}
	if seen["app-1"] == 0 || seen["app-2"] == 0 {
		t.Errorf("requests were not spread: %v", seen)
	}

	// A client's own X-Forwarded-For (and friends) is dropped: 127.0.0.1 is not trusted.
	forged := http.Header{
		"X-Forwarded-For": {"6.6.6.6"},
		"X-Real-Ip":       {"6.6.6.6"},
		"Forwarded":       {"for=6.6.6.6"},
	}
	code, body, _ := l.get(t, "/forged", forged)
	if code != 200 || !strings.HasSuffix(body, "xff=127.0.0.1") {
		t.Errorf("forged XFF: got %d %q, want 200 ... xff=127.0.0.1", code, body)
	}
	out := l.out.String()
	for _, want := range []string{`"msg":"listening"`, `"listener":"http"`, `"listener":"admin"`,
		`"msg":"request"`, `"client_ip":"127.0.0.1"`, `"backend":"app-`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s", want)
		}
	}
}
