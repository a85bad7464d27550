// Package balancer spreads requests over backends and retries what can safely be retried.
//
// A Pool holds the backends in a copy-on-write snapshot; each Backend has its own
// http.Transport and httputil.ReverseProxy (Rewrite, never Director). A Proxy is the
// http.Handler: it picks a backend with a Policy (round_robin, least_conn, p2c), counts the
// request in flight until its body is copied, and retries a dial error for any method and a
// reset or per-try timeout for idempotent methods, on backends not yet tried, within
// max_retries and the retry budget. Health comes from package health through the Pool's
// HealthTargets/ReportCheck/SetHealthy/IsHealthy/EjectUnlessLast methods and the Observer
// interface; neither package imports the other.
package balancer
