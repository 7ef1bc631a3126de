# Vigil. `make test` and `make demo` run `make deps` first.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
GOBIN := $(shell $(GO) env GOPATH)/bin
PLUGINS := $(notdir $(wildcard plugins/*/cmd/vigil-plugin-*))
CMDS := $(notdir $(wildcard cmd/svcmgr cmd/svcmon cmd/nodemgr cmd/vigild cmd/vigil-lab cmd/vigil-arbitrator))
TEST_TIMEOUT ?= 20m
# The version every binary shows (--version, `svcmgr plugins`), from git.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X github.com/vigil-ha/vigil/core/version.Version=$(VERSION)
# The plugin SDK is a Go module of its own (the main module requires it
# through a replace): `go list ./...` here does not list its packages, so
# test, lint and fuzz run it on its own (go -C $(SDK)).
SDK := plugins/sdk

.PHONY: all deps build package test sim proto lint fuzz bench bench-failover chaos demo demo-single clean

all: build

deps:
	@bash .ci/deps

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ $(foreach p,$(PLUGINS),./plugins/$(subst vigil-plugin-,,$(p))/cmd/$(p))
	$(GO) build -o $(BIN)/ ./e2e/lab/regclient

# Debian packages of what `make build` built, into dist/: vigil (vigild,
# svcmgr, svcmon, nodemgr, vigil-arbitrator, the plugins, the unit, man
# pages, completions) and vigil-lab. tools/package is a module of its own
# (nfpm stays out of Vigil's dependencies).
package: build
	@mkdir -p dist
	rm -f dist/vigil_*.deb dist/vigil-lab_*.deb
	cd tools/package && $(GO) run . -bin $(BIN) -repo $(CURDIR) -out $(CURDIR)/dist -version $(VERSION)

# The whole suite, as root (root-only tests skip with the reason otherwise).
# VIGIL_BIN_DIR lets the integration tests use the binaries just built.
# The lab suites (whole clusters of namespaces, docker daemons and BMCs on
# two cores) run one package at a time, after the rest: a vigild restarted
# within its 1 s heartbeat timeout must not be starved by a parallel suite.
# cmd/vigil-lab's include a short chaos run (10 faults, seed 1, the faults
# the daemon is known to survive); `make chaos` is the long one.
LAB_PKGS := ./e2e/... ./cmd/vigil-lab
test: deps build package
	$(GO) -C $(SDK) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	VIGIL_BIN_DIR=$(BIN) VIGIL_DIST_DIR=$(CURDIR)/dist $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v -e /e2e/ -e /cmd/vigil-lab)
	VIGIL_BIN_DIR=$(BIN) VIGIL_DIST_DIR=$(CURDIR)/dist $(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) $(LAB_PKGS)

# The deterministic simulation of a cluster (core/sim) over SEEDS seeds;
# `make test` runs its default 2000 as part of ./core/... . A failing seed
# prints its trace; replay one with
# go test ./core/sim -run 'TestSim$$' -seed=S -v
SEEDS ?= 100000
sim:
	$(GO) test -count=1 -timeout 0 -run 'TestSim$$' -v ./core/sim -seeds=$(SEEDS)

# The wire lives in the SDK module (plugins/sdk/proto); protoc runs from
# the repository root so each .proto keeps its path (plugins/sdk/proto/...)
# as its name in the protobuf registry.
proto:
	PATH=$(GOBIN):$$PATH protoc -I . --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative $(SDK)/proto/*.proto

lint:
	gofmt -l $$(git ls-files '*.go') | (! grep .)
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...
	$(GO) -C $(SDK) vet ./...
	cd $(SDK) && $(GOBIN)/staticcheck ./...

# Every decoder of outside bytes has a fuzzer; each runs for $(FUZZTIME).
# go test -fuzz takes one target per run, so they are listed package:name.
# The hb-net frame fuzzers are another change's (plugins/hb-net/fuzz_test.go).
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	./core/config:FuzzParse \
	./core/cluster:FuzzOpen \
	./core/cluster:FuzzDataset \
	./core/api:FuzzServer \
	./core/arbitrator:FuzzDecodeRequest \
	./plugins/docker:FuzzParseRunArgs \
	./plugins/docker:FuzzSplitWords \
	./plugins/hb-disk:FuzzDecodeSlot \
	./plugins/hb-net:FuzzFrameDecode \
	./plugins/hb-net:FuzzFrameRoundTrip \
	./$(SDK)/value:FuzzParse \
	./$(SDK)/proto:FuzzReadFrame
# Each runs from its package's directory, so the SDK module's are found too.
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $${t%%:*} $${t##*:}"; \
		$(GO) -C $${t%%:*} test -run '^$$' -fuzz "^$${t##*:}\$$" -fuzztime $(FUZZTIME) .; \
	done

# Go benchmarks (a status call through a plugin vs in-process), then the
# service start against a shell script doing the same steps.
bench: deps build
	VIGIL_BIN_DIR=$(BIN) $(GO) test -run '^$$' -bench 'PluginBoundary|FSStatus' -benchtime 5000x ./bench/...
	# One op of these is a whole refresh, a daemon, or 20 peer losses.
	VIGIL_BIN_DIR=$(BIN) $(GO) test -run '^$$' -bench 'FullRefresh|DaemonRSS|PeerLost' -benchtime 1x ./bench/...
	VIGIL_BIN_DIR=$(BIN) RUNS=$(or $(RUNS),5) bash bench/startup.sh

# N power-offs of the active node in the lab, timed (RUNS=10 by default).
bench-failover: deps build
	VIGIL_BIN_DIR=$(BIN) RUNS=$(or $(RUNS),10) PROFILE=$(PROFILE) bash bench/failover.sh

# The floor of each phase of a takeover (fence round trip, ARP, vgchange,
# mount, dockerd ready, the registry's container start and first answer),
# each measured alone, RUNS times (5): a markdown table for the README.
# One at a time on a shared host: flock /tmp/vigil-lab.lock make bench-limits
.PHONY: bench-limits
bench-limits: deps build
	$(GO) build -o $(BIN)/ ./bench/limitsprobe
	VIGIL_BIN_DIR=$(BIN) RUNS=$(or $(RUNS),5) bash bench/limits.sh

# Garbage UDP and TCP at both lab nodes' heartbeat ports, RATE packets a
# second for DURATION (1000, 10m): no peer lost, no fence; RSS and status
# latency before and after. One lab at a time on a shared host:
# flock /tmp/vigil-lab.lock make soak
.PHONY: soak
soak: deps build
	$(GO) build -o $(BIN)/ ./e2e/lab/garbage
	VIGIL_BIN_DIR=$(BIN) DURATION=$(or $(DURATION),10m) RATE=$(or $(RATE),1000) bash bench/soak.sh

# Randomized faults against a lab of its own (FAULTS=100 by default; SEED=
# replays a run, ONLY=a,b draws from those faults: `bin/vigil-lab chaos
# --list`), checked for double mounts, dual floating addresses, lost
# images and services that do not come back; exit 1 on any violation.
chaos: deps build
	$(BIN)/vigil-lab chaos --faults $(or $(FAULTS),100) $(if $(SEED),--seed $(SEED)) $(if $(ONLY),--only $(ONLY))

# The main job: a two-node lab, the seed's services, a node powered off,
# the failover shown. `make demo-single` runs the busybox service on this
# host alone.
demo: deps build
	@VIGIL_BIN_DIR=$(BIN) bash e2e/lab/demo.sh

demo-single: deps build
	@VIGIL_BIN_DIR=$(BIN) bash e2e/single-node/demo.sh

clean:
	rm -rf $(BIN) dist
