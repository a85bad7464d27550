// Package hotpath holds Go benchmarks of lb's request path: a request through lb's front end
// (internal/frontend: lb's own HTTP/1.1 loop, or net/http as with LB_FAST_PATH=off) and the
// forwarding loop of balancer.Proxy, to an in-process backend over real loopback TCP, next to the same request sent directly and through a bare
// httputil.ReverseProxy, so the proxy's own cost (ns and allocations per request) can be read
// as a difference. Run them with
//
//	go test -run '^$' -bench . -benchmem ./bench/hotpath
package hotpath
