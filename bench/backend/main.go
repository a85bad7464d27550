// Command backend is the benchmark's upstream server: a fixed small response
// over HTTP/1.1 keep-alive on one or more loopback listeners, optionally
// also over TLS (the "direct" reference for the HTTPS modes).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		os.Stderr.WriteString("backend: " + err.Error() + "\n")
		os.Exit(1)
	}
}
