package balancer

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the balancer's collectors, registered on an injected registerer.
type metrics struct {
	requests        *prometheus.CounterVec   // backend, code
	duration        *prometheus.HistogramVec // backend
	retries         *prometheus.CounterVec   // reason
	budgetExhausted prometheus.Counter
	failOpen        prometheus.Counter
	broken          *prometheus.CounterVec // backend
}

// noBackend is the backend label of requests no backend answered.
const noBackend = "none"

func newMetrics(reg prometheus.Registerer, p *Pool) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lb_requests_total", Help: "Proxied requests by backend and response status code.",
		}, []string{"backend", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lb_request_duration_seconds", Help: "Time from dispatch until the response body was copied.",
			Buckets: prometheus.DefBuckets,
		}, []string{"backend"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lb_retries_total", Help: "Requests retried on another backend, by reason (dial, reset, timeout).",
		}, []string{"reason"}),
		budgetExhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lb_retry_budget_exhausted_total", Help: "Retries refused because the retry budget was spent.",
		}),
		failOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lb_fail_open_total", Help: "Requests sent to unhealthy active backends because none was healthy.",
		}),
		broken: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lb_responses_broken_total", Help: "Responses cut off by the backend after bytes went to the client.",
		}, []string{"backend"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.retries, m.budgetExhausted, m.failOpen, m.broken, newPoolCollector(p)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register balancer metrics: %w", err)
		}
	}
	for _, r := range []string{reasonDial, reasonReset, reasonTimeout} {
		m.retries.WithLabelValues(r)
	}
	return m, nil
}

// forget deletes every series of a removed backend.
func (m *metrics) forget(name string) {
	m.requests.DeletePartialMatch(prometheus.Labels{"backend": name})
	m.duration.DeleteLabelValues(name)
	m.broken.DeleteLabelValues(name)
}

// CodeText renders an HTTP status code in decimal (a metric's label, HTTP/2's :status)
// without allocating for the common ones.
func CodeText(code int) string {
	switch code {
	case 200:
		return "200"
	case 201:
		return "201"
	case 204:
		return "204"
	case 206:
		return "206"
	case 301:
		return "301"
	case 302:
		return "302"
	case 304:
		return "304"
	case 400:
		return "400"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	case 499:
		return "499"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}

// poolCollector reads per-backend gauges from the pool's snapshot at scrape time, so a removed
// backend's series disappear with it and the request path updates no gauges.
type poolCollector struct {
	p                              *Pool
	up, inFlight, draining, upgrad *prometheus.Desc
}

func newPoolCollector(p *Pool) *poolCollector {
	l := []string{"backend"}
	return &poolCollector{
		p:        p,
		up:       prometheus.NewDesc("lb_backend_up", "1 if the backend passes health checks.", l, nil),
		inFlight: prometheus.NewDesc("lb_backend_in_flight", "Requests dispatched to the backend whose response body is not yet copied.", l, nil),
		draining: prometheus.NewDesc("lb_backend_draining", "1 if the backend is draining.", l, nil),
		upgrad:   prometheus.NewDesc("lb_backend_upgraded", "Upgraded (WebSocket) connections through the backend.", l, nil),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.inFlight
	ch <- c.draining
	ch <- c.upgrad
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.p.backends() {
		gauge(ch, c.up, b2f(b.Healthy()), b.name)
		gauge(ch, c.inFlight, float64(b.InFlight()), b.name)
		gauge(ch, c.draining, b2f(b.State() == StateDraining), b.name)
		gauge(ch, c.upgrad, float64(b.upgraded.Load()), b.name)
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, name string) {
	m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, name)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

func b2f(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
