# watcher — the two commands the README promises:
#   make run    build and run the daemon (CONFIG=path to use a config file; ARGS=... for more flags)
#   make test   every test, unit and integration, against a private Docker engine and an in-process registry
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
ENGINE    := scripts/test-engine.sh
# The private engine's socket (scripts/test-engine.sh); never the machine's default daemon.
TEST_DOCKER_HOST ?= unix://$(or $(WATCHER_ENGINE_DIR),/tmp/watcher-test-engine)/docker.sock
CONFIG    ?=
ARGS      ?=

.PHONY: build run test test-swarm unit bench chaos engine-start engine-stop lint fuzz clean screenshots

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/watcher ./cmd/watcher

run: build
	./bin/watcher run $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

engine-start:
	@$(ENGINE) start

engine-stop:
	@$(ENGINE) stop

# Unit and integration tests; the race detector on everything (most packages are concurrent).
# WATCHER_REQUIRE_ENGINE=1 turns a missing engine into a failure instead of a skip.
# Packages whose tests use internal/testenv run one at a time: Debian's Docker 20.10 can deadlock in
# libnetwork under heavy concurrent create/remove churn on user networks (moby#46661), and one
# package at a time keeps the engine's load to what a single suite makes. The rest run in parallel.
ENGINE_PKGS = $(shell $(GO) list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... | awk '/internal\/testenv/ {print $$1}')
OTHER_PKGS  = $(filter-out $(ENGINE_PKGS),$(shell $(GO) list ./...))
test: engine-start lint
	$(GO) test -race -timeout 10m -count=1 $(OTHER_PKGS)
	DOCKER_HOST=$(TEST_DOCKER_HOST) WATCHER_REQUIRE_ENGINE=1 $(GO) test -race -timeout 25m -count=1 -p 1 $(ENGINE_PKGS)

# A Swarm of 3 nodes on this machine (scripts/swarm-lab.sh: network namespaces and private dockerds;
# needs root and iproute2): a service with a task on every node updated, then again with one worker
# killed mid-update (reported once update.service_timeout has passed, never hung). About a minute
# and a half; CI runs it after make test. The single-node Swarm tests are part of make test.
test-swarm:
	@scripts/swarm-lab.sh up 3 >/dev/null || { scripts/swarm-lab.sh down; exit 1; }
	@set -a; eval "$$(scripts/swarm-lab.sh env)"; set +a; \
	  $(GO) test -tags swarmlab -race -count=1 -timeout 10m -run '^TestSwarmLab$$' -v ./cmd/watcher/; \
	  status=$$?; scripts/swarm-lab.sh down; exit $$status

# Only the tests that need no engine (they skip, never fail, without one — outside CI).
unit:
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Benchmarks print their numbers; docs/benchmarks.md keeps the latest table. watcher-bench prints
# the summary table (issue 7); BENCH_ARGS passes flags to it, e.g. BENCH_ARGS='-big 0' skips the
# 1000-container check, BENCH_ARGS='-hosts 0' the check over 3 extra engines, BENCH_ARGS='-profile /tmp/prof'
# writes pprof profiles.
BENCH_ARGS ?=
bench: engine-start
	DOCKER_HOST=$(TEST_DOCKER_HOST) WATCHER_REQUIRE_ENGINE=1 $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./...
	DOCKER_HOST=$(TEST_DOCKER_HOST) $(GO) run ./cmd/watcher-bench $(BENCH_ARGS)

# The randomized fault campaign (docs/reliability.md): CHAOS_SCHEDULES schedules drawn from seeds
# CHAOS_FIRST.. (the first 50 also run in make test), CHAOS_PARALLEL at a time, through a
# fault-injecting proxy in front of the private engine. CHAOS_SEED=N replays one schedule. The
# figures (schedules, faults by kind, kills, user actions, violations) go to CHAOS_REPORT.
CHAOS_SCHEDULES ?= 1000
CHAOS_PARALLEL  ?= 2
CHAOS_REPORT    ?= $(CURDIR)/bin/chaos-report.json
chaos: engine-start
	@mkdir -p $(dir $(CHAOS_REPORT))
	DOCKER_HOST=$(TEST_DOCKER_HOST) WATCHER_REQUIRE_ENGINE=1 CHAOS_SCHEDULES=$(CHAOS_SCHEDULES) CHAOS_REPORT=$(CHAOS_REPORT) \
	  $(GO) test -race -count=1 -timeout 8h -parallel $(CHAOS_PARALLEL) -run 'TestChaos$$' ./lifecycle/

# The dashboard's screenshots in docs/images, taken by its browser tests (Debian's chromium).
screenshots: engine-start
	mkdir -p docs/images
	DOCKER_HOST=$(TEST_DOCKER_HOST) WATCHER_REQUIRE_ENGINE=1 WATCHER_SCREENSHOTS=$(CURDIR)/docs/images $(GO) test -count=1 -run 'TestDashboard' ./cmd/watcher/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 60s ./config/

clean:
	rm -rf bin
