package balancer

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"time"

	"outrigger/internal/clientip"
	"outrigger/internal/logging"
)

// Observer receives the outcome of each attempt on real traffic: failed is true for connection
// refused/reset and timeouts, false for an answer (whatever its status). Client cancellations
// are not reported. health.Passive satisfies it. If the observer also has a
// Forget(backend string) method (health.Passive does), the proxy calls it when the last request
// that touched a removed backend ends, so an outcome reported while the backend was being
// removed does not outlive it.
type Observer interface {
	Observe(backend string, failed bool)
}

// forgetter is the optional part of an Observer.
type forgetter interface{ Forget(backend string) }

// ProxyConfig holds the proxy settings a reload may change.
type ProxyConfig struct {
	// DialTimeout bounds connecting to a backend (0 keeps the pool's).
	DialTimeout time.Duration
	// PerTryTimeout bounds request written -> response headers, per attempt (0 keeps the pool's).
	PerTryTimeout time.Duration
	// MaxRetries is how many other backends a request may be retried on.
	MaxRetries int
	// RetryBudget is the share of requests over 10 s that may be retries after a reset or a
	// timeout (at least 3/s). Retries after a dial error, which never reached a backend and
	// cost it nothing, are bounded by MaxRetries only.
	RetryBudget float64
	// RetryBodyBytes is the largest request body buffered for replay.
	RetryBodyBytes int64
	// MaxInFlightPerBackend caps requests in flight per backend; 0 means unlimited.
	MaxInFlightPerBackend int64
	// TrustedProxies decides whose X-Forwarded-For is kept; nil trusts nobody.
	TrustedProxies *clientip.Resolver
}

// Proxy is the load balancer's http.Handler: it picks a backend by policy, proxies the request
// and retries what can safely be retried on backends not yet tried.
type Proxy struct {
	pool     *Pool
	policy   atomic.Pointer[policyBox]
	cfg      atomic.Pointer[ProxyConfig]
	observer Observer
	logger   *slog.Logger
	budget   *retryBudget
	openFail atomic.Bool // whether the last pick had to fail open (for transition logs)
}

type policyBox struct{ Policy }

// NewProxy returns a Proxy over pool. observer (may be nil) is fed passive health outcomes.
func NewProxy(pool *Pool, policy Policy, cfg ProxyConfig, observer Observer, logger *slog.Logger) *Proxy {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{pool: pool, observer: observer, logger: logger, budget: newRetryBudget(nil)}
	p.SetPolicy(policy)
	p.SetConfig(cfg)
	return p
}

// SetConfig replaces the proxy settings (SIGHUP); requests in flight keep the old ones.
func (p *Proxy) SetConfig(cfg ProxyConfig) {
	cfg.MaxRetries = max(cfg.MaxRetries, 0)
	cfg.RetryBodyBytes = max(cfg.RetryBodyBytes, 0)
	p.cfg.Store(&cfg)
	p.pool.SetTimeouts(cfg.DialTimeout, cfg.PerTryTimeout)
}

// SetPolicy replaces the balancing policy (SIGHUP). A nil policy means least_conn.
func (p *Proxy) SetPolicy(pol Policy) {
	if pol == nil {
		pol = &LeastConn{}
	}
	p.policy.Store(&policyBox{pol})
}

// stateKey finds a request's reqState in its context.
type stateKey struct{}

// reqState is everything the proxy tracks for one client request, in one allocation.
type reqState struct {
	p            *Proxy
	forwardedFor string
	proto        string

	bodyMode int
	body     []byte
	stream   streamBody

	// per attempt
	w        attemptWriter
	start    time.Time
	err      error
	upgraded bool

	tries
}

// tries is what one client request tracks across its attempts, whichever path serves it.
type tries struct {
	skip    []*Backend // tried or full
	skipBuf [4]*Backend
	held    []*Backend // picked backends whose refs this request holds
	heldBuf [4]*Backend
	candBuf [8]*Backend
}

// reset prepares t for a new request.
func (t *tries) reset() {
	t.skip, t.held = t.skipBuf[:0], t.heldBuf[:0]
}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// rewrite prepares the outgoing request (httputil.ReverseProxy.Rewrite): backend URL, the
// client's Host kept, X-Forwarded-* rebuilt from trusted hops, spoofable headers dropped.
// X-Request-ID is passed on as the logging middleware set it.
func rewrite(b *Backend, pr *httputil.ProxyRequest) {
	pr.SetURL(b.url)
	pr.Out.Host = pr.In.Host
	h := pr.Out.Header
	clientip.RemoveSpoofable(h)
	if st := stateFrom(pr.In.Context()); st != nil {
		if st.forwardedFor != "" {
			h.Set("X-Forwarded-For", st.forwardedFor)
		}
		h.Set("X-Forwarded-Proto", st.proto)
		if st.bodyMode == bodyBuffered {
			h.Del("Expect") // the body is already here; do not wait for 100-continue
		}
	}
	if pr.In.Host != "" {
		h.Set("X-Forwarded-Host", pr.In.Host)
	}
}

// gotResponse runs when a backend's response headers arrive (ModifyResponse).
func gotResponse(b *Backend, res *http.Response) {
	st := stateFrom(res.Request.Context())
	if st == nil {
		return
	}
	b.observeLatency(time.Since(st.start))
	if st.p.observer != nil {
		st.p.observer.Observe(b.name, false)
	}
}

// recordError is the reverse proxy's ErrorHandler: it writes nothing and leaves the decision
// (retry or which error status) to the Proxy.
func recordError(_ http.ResponseWriter, r *http.Request, err error) {
	if st := stateFrom(r.Context()); st != nil {
		st.err = err
	}
}

// ServeHTTP proxies one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	begin := time.Now()
	cfg := p.cfg.Load()
	pol := p.policy.Load().Policy
	ctx := r.Context()
	p.budget.request()

	st := &reqState{p: p, forwardedFor: cfg.TrustedProxies.ForwardedFor(r), proto: "http"}
	if r.TLS != nil {
		st.proto = "https"
	}
	st.reset()
	defer p.finish(&st.tries)
	if err := st.bufferBody(r, cfg.RetryBodyBytes); err != nil {
		p.bodyError(w, r, err)
		return
	}
	out := r.WithContext(context.WithValue(ctx, stateKey{}, st))

	var (
		last     *Backend
		reason   string
		attempts int
		sawFull  bool
		aborted  bool
	)
	for attempts < 1+cfg.MaxRetries {
		b, full := p.pick(&st.tries, cfg, pol, false)
		sawFull = sawFull || full
		if b == nil {
			break
		}
		attempts++
		last = b
		st.setBody(out, r)
		aborted = p.attempt(w, out, b, st)
		if st.w.wrote || aborted {
			break
		}
		if st.err == nil { // nothing written and no error: treat as a broken attempt
			st.err = errors.New("backend wrote no response")
		}
		if ctx.Err() != nil {
			break // the client went away; nothing to blame the backend for
		}
		var retry bool
		if reason, retry = p.afterFailure(b, st.err, r.Method, st.replayable(), attempts, cfg); !retry {
			break
		}
	}

	code := 0
	switch {
	case st.w.wrote && !aborted:
		code = st.w.code
	case ctx.Err() != nil || (aborted && st.w.writeErr != nil):
		code = 499 // client went away: not the backend's fault
		logging.SetStatus(ctx, code)
	case aborted:
		code = st.w.code // the backend broke the body after it started
		p.countBroken(last)
	default:
		c, msg := failureStatus(last, sawFull, reason)
		code = writeError(w, c, msg)
	}
	logged := ""
	if last != nil {
		logged = last.name
	}
	logging.Annotate(ctx, slog.String("backend", logged), slog.Int("attempts", attempts))
	p.countRequest(last, code, begin)
	if aborted && code != 499 {
		logging.Annotate(ctx, slog.Bool("broken", true))
		abortResponse(w)
	}
}

// afterFailure records a failed attempt on b (passive health, observer) and decides whether
// the request goes on to another backend: a retryable failure for its method, within
// max_retries, and within the retry budget unless it never reached a backend (dial error).
// It returns the failure's reason.
func (p *Proxy) afterFailure(b *Backend, err error, method string, replayable bool, attempts int, cfg *ProxyConfig) (reason string, retry bool) {
	reason = classify(err)
	b.failures.Add(1)
	p.observeFailure(b)
	if !retryable(reason, method, replayable) || attempts >= 1+cfg.MaxRetries {
		return reason, false
	}
	if reason != reasonDial && !p.budget.allow(cfg.RetryBudget) {
		p.pool.m.budgetExhausted.Inc()
		return reason, false
	}
	p.pool.m.retries.WithLabelValues(reason).Inc()
	return reason, true
}

// failureStatus is the status and fixed message for a request no backend answered: last is
// the backend of the last attempt (nil if none could be picked), sawFull whether one was
// skipped for max_in_flight_per_backend, reason the last attempt's failure.
func failureStatus(last *Backend, sawFull bool, reason string) (int, string) {
	switch {
	case last == nil && sawFull:
		return http.StatusServiceUnavailable, "all backends busy"
	case last == nil:
		return http.StatusServiceUnavailable, "no backend available"
	}
	return errorStatus(reason)
}

// countRequest records a finished request in lb_requests_total and, if a backend took it,
// lb_request_duration_seconds; nothing is written for a removed backend.
func (p *Proxy) countRequest(last *Backend, code int, begin time.Time) {
	name := noBackend
	if last != nil {
		if last.removed.Load() {
			return
		}
		name = last.name
	}
	p.pool.m.requests.WithLabelValues(name, codeLabel(code)).Inc()
	if last != nil {
		p.pool.m.duration.WithLabelValues(name).Observe(time.Since(begin).Seconds())
	}
}

// countBroken records a response b cut off after it had started: a failure of b.
func (p *Proxy) countBroken(b *Backend) {
	b.failures.Add(1)
	if !b.removed.Load() {
		p.pool.m.broken.WithLabelValues(b.name).Inc()
	}
	p.observeFailure(b)
}

// observeFailure reports a failed attempt on b to the observer, unless b was removed.
func (p *Proxy) observeFailure(b *Backend) {
	if p.observer != nil && !b.removed.Load() {
		p.observer.Observe(b.name, true)
	}
}

// finish drops the request's hold on the backends it picked. The removed checks before each
// metric increment and observation are check-then-act: a backend removed in between gets its
// series (or passive count) back. Every such write happens while the request holds a ref, so
// whoever sees the last ref go with the backend removed (here, or retire if no request holds
// one) deletes them again; both sides use sequentially consistent atomics, so at least one
// of them does. A backend a reload replaced under the same name leaves the name's series and
// passive count to its successor.
func (p *Proxy) finish(t *tries) {
	for _, b := range t.held {
		if b.refs.Add(-1) == 0 && b.removed.Load() && !p.pool.succeeded(b) {
			p.pool.m.forget(b.name)
			if f, ok := p.observer.(forgetter); ok {
				f.Forget(b.name)
			}
		}
	}
}

// abortResponse cuts a response the backend broke off, so the client sees it incomplete rather
// than ended: it closes an HTTP/1 connection, else aborts the handler (an HTTP/2 stream reset).
func abortResponse(w http.ResponseWriter) {
	if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = c.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// attempt sends the request to b once. It reports whether the reverse proxy aborted a response
// that had started (the body copy failed).
func (p *Proxy) attempt(w http.ResponseWriter, out *http.Request, b *Backend, st *reqState) (aborted bool) {
	st.w.reset(w, st, b)
	st.err, st.upgraded = nil, false
	st.start = time.Now()
	b.requests.Add(1)
	defer func() {
		if !st.upgraded {
			b.release()
		}
		if rec := recover(); rec != nil {
			if rec != http.ErrAbortHandler {
				panic(rec)
			}
			aborted = true
		}
	}()
	b.proxy.ServeHTTP(&st.w, out)
	return false
}

// pick chooses a backend for the next attempt and counts it in flight. After choosing, it
// re-checks the backend's state, so a drain (or a down mark) is exact from the instant it
// returns. full reports that some backend was skipped for max_in_flight_per_backend.
// syncOnly skips backends without a synchronous transport (the fast path serves only those).
func (p *Proxy) pick(t *tries, cfg *ProxyConfig, pol Policy, syncOnly bool) (b *Backend, full bool) {
	list := p.pool.backends()
	for range 2*len(list) + 2 {
		cands := t.candBuf[:0]
		healthy := false
		for _, x := range list {
			if x.Eligible() {
				healthy = true
				if !t.skipped(x) && (!syncOnly || x.sync != nil) {
					cands = append(cands, x)
				}
			}
		}
		open := !healthy
		if open {
			for _, x := range list {
				if x.State() == StateActive && !t.skipped(x) && (!syncOnly || x.sync != nil) {
					cands = append(cands, x)
				}
			}
		}
		p.noteFailOpen(open, len(cands) > 0)
		if len(cands) == 0 {
			return nil, full
		}
		b = pol.Pick(cands)
		b.acquire()
		if b.State() != StateActive || (!open && !b.Healthy()) {
			b.release() // changed under us: choose again among the rest
			continue
		}
		if cfg.MaxInFlightPerBackend > 0 && b.InFlight() > cfg.MaxInFlightPerBackend {
			b.release()
			t.skip = append(t.skip, b)
			full = true
			continue
		}
		if open {
			p.pool.m.failOpen.Inc()
		}
		t.skip = append(t.skip, b)
		b.refs.Add(1) // before any removed check that guards a write for b
		t.held = append(t.held, b)
		return b, full
	}
	return nil, full
}

func (t *tries) skipped(b *Backend) bool {
	for _, x := range t.skip {
		if x == b {
			return true
		}
	}
	return false
}

// noteFailOpen logs when the proxy starts and stops failing open.
func (p *Proxy) noteFailOpen(open, any bool) {
	if open && any && !p.openFail.Load() && !p.openFail.Swap(true) {
		p.logger.Warn("no healthy backend: failing open to the active backends")
	} else if !open && p.openFail.Load() && p.openFail.Swap(false) {
		p.logger.Info("healthy backend available again: fail-open ended")
	}
}

// bodyError answers a request whose body could not be read.
func (p *Proxy) bodyError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case r.Context().Err() != nil:
		logging.SetStatus(r.Context(), 499)
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
	default:
		writeError(w, http.StatusBadRequest, "could not read request body")
	}
}

// writeError writes a small JSON error (msg is a fixed text, never an internal error).
func writeError(w http.ResponseWriter, code int, msg string) int {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`{"error":"` + msg + `"}` + "\n"))
	return code
}
