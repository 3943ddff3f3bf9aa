# mvstack: make demo runs a whole rack on this machine; make test runs every test.
# Both install what they need first (.ci/install-deps).

GO       ?= go
BIN      := bin
FUZZTIME ?= 60s
# The budget for the whole suite on 2 cores is 25 minutes.
TESTTIMEOUT ?= 24m

.PHONY: all build deps test demo bench fuzz lint clean

all: build

deps:
	@./.ci/install-deps

build:
	$(GO) build -o $(BIN)/ ./cmd/...

test: deps
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TESTTIMEOUT) ./...

demo: deps build
	$(BIN)/mvlab demo

# Benchmarks print each figure beside its anchor measured in the same run.
# They never fail the build.
bench: deps build
	@for d in $$($(GO) list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./bench/...); do \
	  echo "== $$d"; $(GO) run $$d || echo "bench: $$d did not finish (benchmarks never fail the build)"; \
	done

# Runs every native fuzz target for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$$($(GO) env GOPATH)/bin/staticcheck ./...

clean:
	rm -rf $(BIN)
