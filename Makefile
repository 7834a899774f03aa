# The README's commands. `make test` installs what the tests need (Debian packages, Go modules)
# before it runs them, so it works on a fresh machine.

GO ?= go
STATICCHECK = $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test deps gotest ctest lint demo fuzz vectors bench results deb

test: deps gotest ctest

deps:
	./.ci/deps

gotest:
	$(GO) test -race -count=1 ./...
	# 10,000 concurrent sessions do not fit under the race detector: run that test without it.
	$(GO) test -count=1 -run 'TestTenThousandSessionsHeld' ./gateway/server

ctest:
	@if [ -f devicelib/c/Makefile ]; then $(MAKE) -C devicelib/c test; fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

demo:
	$(GO) run ./gateway/cmd/fotagate demo

# Regenerates protocol/testdata/vectors (deterministic; CI checks they are unchanged).
vectors:
	$(GO) generate ./protocol/...

# Runs each fuzz target for FUZZTIME (default 30s) beyond the committed seed corpus. A
# failure is real when it writes a new input under testdata/fuzz (go1.26 can also end a run
# with a spurious "context deadline exceeded": golang/go#75804).
FUZZTIME ?= 30s
FUZZPKGS = ./protocol ./gateway/manifest
fuzz:
	@for p in $(FUZZPKGS); do for t in $$($(GO) test -list 'Fuzz.*' $$p | grep ^Fuzz); do \
		$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$p || exit 1; done; done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./protocol/...
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x ./gateway/server

# The side-by-side bench against TLS, CoAP/DTLS and plain TCP (bench/README.md): about 25
# minutes, needs root for its network namespaces; regenerates bench/RESULTS.md.
results:
	$(GO) run ./bench/cmd/fotabench --reps 3 --parallel 4 --time-budget 25m --prefix-blocks 256 --json bench/results.json --profiles loopback,2mbit-5ms,2mbit-50ms,2mbit-50ms+flash,2mbit-50ms-loss1 --sweep 1,10,100,1000,10000

# Builds dist/fotagate_<version>_<arch>.deb (deploy/README.md).
VERSION ?= $(shell git describe --tags 2>/dev/null || echo 0.1.0)
deb:
	$(GO) run ./deploy/cmd/fotagate-pkg --version $(VERSION)
