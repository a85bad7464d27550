package balancer

import (
	"log/slog"
	"net/http"
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

// Proxy is the load balancer's forwarding loop (Forward) with its settings: it picks a
// backend by policy, sends the request with lb's own backend client, and retries what can
// safely be retried on backends not yet tried. Front ends call Forward.
type Proxy struct {
	pool     *Pool
	policy   atomic.Pointer[policyBox]
	cfg      atomic.Pointer[ProxyConfig]
	observer Observer
	logger   *slog.Logger
	log      *logging.RequestLog
	ids      *logging.RequestIDs
	bufs     copyBufs
	budget   *retryBudget
	openFail atomic.Bool // whether the last pick had to fail open (for transition logs)
}

type policyBox struct{ Policy }

// NewProxy returns a Proxy over pool. observer (may be nil) is fed passive health outcomes;
// every request's access line goes to logger (nil: nowhere).
func NewProxy(pool *Pool, policy Policy, cfg ProxyConfig, observer Observer, logger *slog.Logger) *Proxy {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{pool: pool, observer: observer, logger: logger, log: logging.NewRequestLog(logger),
		ids: logging.NewRequestIDs(), budget: newRetryBudget(nil)}
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

// Config returns the proxy settings in use.
func (p *Proxy) Config() ProxyConfig { return *p.cfg.Load() }

// SetPolicy replaces the balancing policy (SIGHUP). A nil policy means least_conn.
func (p *Proxy) SetPolicy(pol Policy) {
	if pol == nil {
		pol = &LeastConn{}
	}
	p.policy.Store(&policyBox{pol})
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
	p.pool.m.requests.WithLabelValues(name, CodeText(code)).Inc()
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
