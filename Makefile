# Outrigger: the two commands a newcomer needs are `make demo` and `make test`.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
GO      ?= go
E2E_PKGS = ./internal/e2e/...
# h2spec, the HTTP/2 conformance suite that TestH2Spec (cmd/lb) runs against lb.
H2SPEC_VERSION = v2.2.1+incompatible
H2SPEC = $(CURDIR)/.cache/bin/h2spec

.PHONY: all build demo lab test unit e2e vet bench fuzz h2spec h2spec-tool clean

all: build

## build: bin/lb and bin/app with the version stamped in
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/lb ./cmd/lb
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/app ./cmd/app

## demo: PostgreSQL, three app servers and lb on https://localhost:8443 (Ctrl-C stops all)
demo:
	@scripts/ensure-postgres.sh
	$(GO) build -o bin/demo ./cmd/demo
	@# not `go run`: it exits 1 after Ctrl-C even when the demo stopped cleanly
	bin/demo

## lab: (root) the highly available fleet in network namespaces, to break by hand: two lbs
## with keepalived and a virtual IP, three apps, pg_auto_failover (monitor + two data nodes);
## prints the URL and a menu (crash, freeze, blackhole, heal, boot, switchover, rollout)
lab:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/lb ./cmd/lb
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/app ./cmd/app
	$(GO) build -ldflags "-X main.version=$(VERSION)-next" -o bin/app-next ./cmd/app
	$(GO) build -o bin/lab ./cmd/lab
	bin/lab -lb bin/lb -app bin/app -app-next bin/app-next

## test: vet, unit tests with -race, then the end-to-end tests one package at a time
test: vet unit e2e

vet:
	$(GO) vet ./...

unit: h2spec-tool
	@scripts/ensure-postgres.sh
	H2SPEC=$(H2SPEC) $(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v /internal/e2e)

e2e:
	@scripts/ensure-postgres.sh
	$(GO) test -count=1 -p 1 -timeout 15m $(E2E_PKGS)

## h2spec: the HTTP/2 conformance suite against lb over TLS, beside Go's own net/http server
h2spec: h2spec-tool
	H2SPEC=$(H2SPEC) $(GO) test -count=1 -run '^TestH2Spec$$' -v ./cmd/lb

## h2spec-tool: install h2spec from the Go module proxy into .cache/bin (once)
h2spec-tool: $(H2SPEC)
$(H2SPEC):
	GOBIN=$(CURDIR)/.cache/bin $(GO) install github.com/summerwind/h2spec/cmd/h2spec@$(H2SPEC_VERSION)

## fuzz: every fuzz target for FUZZTIME each (default 30s; go test runs their seeds)
fuzz:
	scripts/fuzz.sh

## bench: lb side by side with HAProxy, nginx and Caddy (see bench/README.md)
bench:
	bench/run.sh

clean:
	rm -rf bin
