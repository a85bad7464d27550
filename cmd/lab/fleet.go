package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"outrigger/internal/lab"
	"outrigger/internal/labfleet"
)

// session is a running lab: the fleet, its database, and what was done to which host.
type session struct {
	lab     *lab.Lab
	db      *labfleet.AutoFailover
	fleet   *labfleet.Fleet
	machine netip.Addr
	detach  func() error
	web     *http.Client // from the machine's own namespace, through the attached link
	bins    [2]string    // app binaries rollout alternates between
	next    int          // index in bins of the next rollout's binary

	mu     sync.Mutex
	faults map[string]string // host -> "frozen", "blackholed" (crashes: Host.Crashed)
	webNow string            // the last probe's result (probeWeb)
}

// startLab builds the lab, the fleet and the link from the machine. On error the
// returned session (if any) holds what was made, for close.
func startLab(ctx context.Context, o options) (*session, error) {
	l, err := lab.New(ctx, lab.Options{Need: []string{"keepalived", "pg_autoctl"}})
	if err != nil {
		return nil, err
	}
	s := &session{lab: l, db: &labfleet.AutoFailover{}, bins: [2]string{o.app, o.appNext}, next: 1,
		faults: map[string]string{}}
	s.fleet, err = labfleet.Start(ctx, l, labfleet.Options{LB: o.lb, App: o.app, Apps: o.apps, Database: s.db,
		LBConfig: labfleet.OutageLBConfig()})
	if err != nil {
		return s, err
	}
	if s.machine, s.detach, err = l.Attach(ctx); err != nil {
		return s, err
	}
	// Above lb's per_try_timeout (10 s) + dial_timeout: what a request to a host that just
	// crashed may take, before lb's checks mark it down.
	s.web = &http.Client{Timeout: 12 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.fleet.CertPool}, DisableKeepAlives: true}}
	return s, nil
}

// close removes the link from the machine, the formation and the lab.
func (s *session) close() error {
	var errs []error
	if s.detach != nil {
		errs = append(errs, s.detach())
	}
	errs = append(errs, s.db.Close(), s.lab.Close())
	return errors.Join(errs...)
}

// serve reads commands from in until quit, its end or ctx's end, printing the status line
// whenever it changes.
func (s *session) serve(ctx context.Context, in io.Reader, p *printer, every time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { s.probeWeb(ctx, every) })
	wg.Go(func() { s.watch(ctx, p, every) })
	lines := make(chan string)
	go func() { // ends with in (or the process): a read cannot be cancelled
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		close(lines)
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if f[0] == "quit" || f[0] == "exit" {
				return nil
			}
			start := time.Now()
			msg, err := s.do(ctx, f[0], f[1:])
			if err != nil {
				p.say("error: %s: %v", line, err)
				continue
			}
			if msg != "" {
				p.say("%s", msg)
			}
			p.say("ok: %s (%v)", line, time.Since(start).Round(10*time.Millisecond))
		}
	}
}

// watch prints the status line every time it changes.
func (s *session) watch(ctx context.Context, p *printer, every time.Duration) {
	last := ""
	for {
		line := s.status(ctx)
		if line != last && ctx.Err() == nil {
			p.status(line)
			last = line
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// probeWeb asks GET /healthz through the virtual IP from the machine every interval, on
// its own: a request lb sent to a host that just vanished may take per_try_timeout (10 s),
// and the status line must not wait for it.
func (s *session) probeWeb(ctx context.Context, every time.Duration) {
	for ctx.Err() == nil {
		res := "web DOWN"
		rctx, cancel := context.WithTimeout(ctx, 12*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, s.fleet.URL+"/healthz", nil)
		if resp, err := s.web.Do(req); err == nil {
			resp.Body.Close()
			res = fmt.Sprintf("web %d", resp.StatusCode)
		}
		cancel()
		s.mu.Lock()
		s.webNow = res
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

// status is one line: the web through the virtual IP, who holds it, the database's
// nodes, and every host that is not simply up.
func (s *session) status(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s.mu.Lock()
	web := s.webNow
	s.mu.Unlock()
	if web == "" {
		web = "web ?"
	}
	parts := []string{web}
	if h, err := s.fleet.Holder(); err == nil {
		parts = append(parts, "vip "+h.Name)
	} else {
		parts = append(parts, "vip ?")
	}
	if st, err := s.db.Formation().State(ctx); err == nil {
		parts = append(parts, "db "+st.String())
	} else {
		parts = append(parts, "db ? (monitor unreachable)")
	}
	var down []string
	s.mu.Lock()
	for _, h := range s.lab.Hosts() {
		switch {
		case h.Crashed():
			down = append(down, h.Name()+" crashed")
		case s.faults[h.Name()] != "":
			down = append(down, h.Name()+" "+s.faults[h.Name()])
		}
	}
	s.mu.Unlock()
	if len(down) == 0 {
		parts = append(parts, "all hosts up")
	} else {
		parts = append(parts, "DOWN: "+strings.Join(down, ", "))
	}
	return strings.Join(parts, " | ")
}
