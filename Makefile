# Berth's build. The three commands a newcomer needs:
#   make run    build and start Berth on the embedded default configuration
#   make test   every test: formatting, vet, unit, race and end-to-end
#   make demo   Berth, a local cluster and kubectl through it (make demo-stop)
# They set up what they need on a fresh Debian machine with only Go installed.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/berthgw/berth/gateway.Version=$(VERSION)
# Modules in this repository: the gateway (root) and the plugin SDK, which is
# its own module so plugin authors do not inherit the gateway's dependencies.
MODULES := . sdk plugins/provisioner-local plugins/notify plugins/billing-stripe plugins/dns-rfc2136 plugins/dns-cloudflare

.PHONY: all build run demo demo-stop test fmt-check vet unit e2e-tools pebble helm dex bench bench-proxy bench-idle fuzz proto clean

all: build

# The first-party notifier and billing plugins go beside the binary, where
# the gateway finds and starts them without configuration. The DNS plugins
# need theirs (a server and a key, or a token): they are built beside it
# under names discovery does not take, for plugins.instances to name.
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/berth ./cmd/berth
	cd plugins/notify && $(GO) build -trimpath -o ../../bin/berth-plugin-notify .
	cd plugins/billing-stripe && $(GO) build -trimpath -o ../../bin/berth-plugin-billing-stripe .
	cd plugins/dns-rfc2136 && $(GO) build -trimpath -o ../../bin/dns-rfc2136 .
	cd plugins/dns-cloudflare && $(GO) build -trimpath -o ../../bin/dns-cloudflare .

run: build
	./bin/berth serve

# Berth in the background with provisioner-local, a local cluster made
# through it, a kubeconfig whose user is the berth credential plugin, and
# kubectl get namespaces through Berth; every step printed. All of it lives
# in ./.demo; make demo-stop stops it and removes that directory.
demo:
	bash deploy/demo/demo.sh start

demo-stop:
	bash deploy/demo/demo.sh stop

# The end-to-end tests (a real etcd + kube-apiserver, the pinned kubectl,
# real plugin processes, pebble) run inside `unit` with BERTH_E2E=1, which
# makes a missing tool a failure instead of a skip.
test: fmt-check vet e2e-tools helm dex unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')); \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi
	@echo "gofmt: ok"

# go vet, then staticcheck (pinned, built into the cache on first use;
# staticcheck.conf says which checks) on every module.
STATICCHECK_VERSION := v0.8.2
STATICCHECK_BIN     := $(or $(BERTH_CACHE_DIR),$(HOME)/.cache/berth)/staticcheck/$(STATICCHECK_VERSION)/staticcheck
vet:
	@set -e; for m in $(MODULES); do (cd $$m && echo "go vet ($$m)" && $(GO) vet ./...); done
	@test -x "$(STATICCHECK_BIN)" || GOBIN="$(dir $(STATICCHECK_BIN))" $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@set -e; for m in $(MODULES); do (cd $$m && echo "staticcheck ($$m)" && "$(STATICCHECK_BIN)" ./...); done

unit:
	@set -e; for m in $(MODULES); do (cd $$m && echo "go test -race ($$m)" && BERTH_E2E=1 $(GO) test -race -count=1 -timeout 30m ./...); done

# Builds the pinned kube-apiserver and kubectl (cached by version) and
# installs etcd, shellcheck, chromium and iproute2 from Debian when missing.
e2e-tools:
	bash deploy/e2e/build-k8s.sh

# Builds the pinned pebble (Let's Encrypt's ACME test server) into
# ${BERTH_CACHE_DIR:-$HOME/.cache/berth}/pebble/<version>/. Optional: the TLS
# tests build it themselves on first use; this just does it ahead of time.
PEBBLE_MOD     := gateway/edgetls/pebbletest/testdata/pebble
PEBBLE_VERSION := $(shell awk '$$1 == "require" && $$2 == "github.com/letsencrypt/pebble/v2" { print $$3 }' $(PEBBLE_MOD)/go.mod)
PEBBLE_BIN     := $(or $(BERTH_CACHE_DIR),$(HOME)/.cache/berth)/pebble/$(PEBBLE_VERSION)/pebble
pebble:
	@test -x "$(PEBBLE_BIN)" || (cd $(PEBBLE_MOD) && GOWORK=off $(GO) build -trimpath -o "$(PEBBLE_BIN)" github.com/letsencrypt/pebble/v2/cmd/pebble)
	@echo "$(PEBBLE_BIN)"

# Builds the pinned Helm (for the chart test, deploy/helm) from its own
# module into ${BERTH_CACHE_DIR:-$HOME/.cache/berth}/helm/<version>/helm.
# `make test` builds it before the tests, so its minutes on a cold cache do
# not count against a test timeout; the chart test would otherwise build it
# on first use. The version stamp is the one deploy/helm/helmbin.go checks,
# so the test reuses this binary.
HELM_MOD     := deploy/helm/tool
HELM_VERSION := $(shell awk '$$1 == "require" && $$2 == "helm.sh/helm/v4" { print $$3 }' $(HELM_MOD)/go.mod)
HELM_BIN     := $(or $(BERTH_CACHE_DIR),$(HOME)/.cache/berth)/helm/$(HELM_VERSION)/helm
helm:
	@test -x "$(HELM_BIN)" || (cd $(HELM_MOD) && GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 $(GO) build -trimpath \
	  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)" -o "$(HELM_BIN)" helm.sh/helm/v4/cmd/helm)
	@echo "$(HELM_BIN)"

# Builds the pinned Dex (the OpenID provider of the single sign-on tests,
# gateway/sso/dextest) from its tools module into
# ${BERTH_CACHE_DIR:-$HOME/.cache/berth}/dex/<version>/dex, with the version
# stamp dextest checks, so the tests reuse it. `make test` builds it before
# the tests (minutes on a cold cache); the tests would otherwise build it on
# first use. Dex is pinned by commit (testdata/dex/go.mod); the version is
# dextest.Version.
DEX_MOD     := gateway/sso/dextest/testdata/dex
DEX_VERSION := $(shell sed -n 's/^\tVersion = "\(v[^"]*\)"/\1/p' gateway/sso/dextest/dextest.go)
DEX_BIN     := $(or $(BERTH_CACHE_DIR),$(HOME)/.cache/berth)/dex/$(DEX_VERSION)/dex
dex:
	@test -x "$(DEX_BIN)" || (cd $(DEX_MOD) && GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 $(GO) build -trimpath \
	  -ldflags "-s -w -X main.version=$(DEX_VERSION)" -o "$(DEX_BIN)" github.com/dexidp/dex/cmd/dex)
	@echo "$(DEX_BIN)"

# Quick in-process Go benchmarks. `make bench-proxy` is the slower,
# out-of-process comparison of the proxy with nginx and httputil.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	cd sdk && $(GO) test -run '^$$' -bench . -benchmem -benchtime 3s ./pluginclient/

# Berth's proxy from outside its process against direct, nginx and
# httputil.ReverseProxy (wrk, vegeta), sort and page of 10 000 and 50 000
# pods, 1 000 watches; about 20 minutes. Installs wrk, nginx-light and
# vegeta when missing. Flags: make bench-proxy BENCH_ARGS="-runs 3 -out DIR".
bench-proxy: e2e-tools
	bash deploy/bench/bench-proxy.sh $(BENCH_ARGS)

# The resident memory of an idle `berth serve` (docs/benchmarks.md, "Idle
# footprint"): the binary as `make build` makes it but with no plugins
# beside it, on the embedded default configuration and new data, read 10 s
# after /readyz; three starts, under a minute. Flags: BENCH_ARGS="-runs 5".
bench-idle:
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o "$$d/berth" ./cmd/berth && \
	$(GO) build -o "$$d/proxybench" ./deploy/bench/proxybench && \
	"$$d/proxybench" idle-rss -berth "$$d/berth" $(BENCH_ARGS)

# Regenerates the plugin protocol's Go code with pinned tools (protoc from
# Debian, protoc-gen-go and protoc-gen-go-grpc at fixed versions).
proto:
	bash sdk/proto/gen.sh

# Short fuzz runs of every fuzz target; the seed corpora run in `make test`.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s $$pkg; done; done

clean:
	rm -rf bin
