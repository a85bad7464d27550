package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"outrigger/internal/watchdog"
)

// probeURL is the app's own /healthz through its listener: on 127.0.0.1 when it listens on
// every address, else on the address it listens on.
func probeURL(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String() + "/healthz"
	}
	ap := ta.AddrPort()
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() { // ":8080" and "[::]:8080" take IPv4 too (Linux's dual stack)
		return fmt.Sprintf("http://127.0.0.1:%d/healthz", ap.Port())
	}
	return "http://" + netip.AddrPortFrom(ip, ap.Port()).String() + "/healthz"
}

// selfProbe is the app's watchdog check: one GET of its own /healthz on a new connection,
// so it goes through the accept loop, net/http's connection handling and the whole handler
// chain. Any HTTP answer within timeout is progress, 503 included: a database that does not
// answer is not fixed by restarting the app (that is /healthz's "degraded", for lb), while
// an app that answers nothing at all is.
func selfProbe(url string, timeout time.Duration) watchdog.Check {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("self probe: %w", err)
		}
		req.Header.Set("User-Agent", "outrigger-app-watchdog")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("no answer from its own handlers within %v: %w", timeout, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		return nil
	}
}

// startWatchdog pings systemd while the app answers its own probe, when the unit has
// WatchdogSec=; the returned function stops the pings (at SIGTERM, before the drain:
// TimeoutStopSec bounds the stop, not the watchdog).
func startWatchdog(ctx context.Context, cfg config, addr net.Addr, logger *slog.Logger) (stop func()) {
	if !cfg.WatchdogOn {
		return func() {}
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	check := selfProbe(probeURL(addr), cfg.Watchdog.Interval()/2)
	go func() {
		defer close(done)
		watchdog.Run(wctx, cfg.Watchdog, check, logger)
	}()
	return func() { cancel(); <-done }
}
