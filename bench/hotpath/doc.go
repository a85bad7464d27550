// Package hotpath holds Go benchmarks of lb's request path: a request through the logging
// middleware and balancer.Proxy, or through balancer.FastPath, to an in-process backend over
// real loopback TCP, next to the same request sent directly and through a bare
// httputil.ReverseProxy, so the proxy's own cost (ns and allocations per request) can be read
// as a difference. Run them with
//
//	go test -run '^$' -bench . -benchmem ./bench/hotpath
package hotpath
