# Gatehouse build. `make demo` and `make test` are the two commands a newcomer
# needs (both as root); see README.md.

GO      ?= go
TOOLS   := $(CURDIR)/.tools/bin
BIN     := $(CURDIR)/bin
PLUGINS := auth-psk auth-x509 auth-krb5 l2tp interop-windows interop-apple interop-android
# Plugins kept in contrib/ (they wrap outside protocols): built the same way.
CONTRIB_PLUGINS := radius

# Pinned code generators; `make proto` uses these and nothing else.
BUF_VERSION                := v1.50.0
# wireguard-go, for the throughput comparison in bench/ only.
WIREGUARD_GO_VERSION       := v0.0.0-20250521234502-f333402bd9cb
PROTOC_GEN_GO_VERSION      := v1.36.6
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1

FUZZTIME ?= 30s

.PHONY: root all build demo test unit proto tools deps bench fuzz vet clean install

# make install puts everything in the standard places (DESTDIR for
# packaging): the daemon in sbin, the CLI in bin, plugins where
# plugins.dir defaults to, the systemd unit, a sysctl file for forwarding,
# an example configuration (never over an existing one), and the docs.
PREFIX     ?= /usr
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system

all: build

build:
	@mkdir -p $(BIN)/plugins
	$(GO) build -o $(BIN)/gatehoused ./cmd/gatehoused
	$(GO) build -o $(BIN)/gatehouse ./cmd/gatehouse
	$(GO) build -o $(BIN)/gatehouse-demo ./cmd/gatehouse-demo
	@for p in $(PLUGINS); do echo "$(GO) build -o $(BIN)/plugins/$$p ./plugins/$$p"; \
		$(GO) build -o $(BIN)/plugins/$$p ./plugins/$$p || exit 1; done
	@for p in $(CONTRIB_PLUGINS); do echo "$(GO) build -o $(BIN)/plugins/$$p ./contrib/$$p"; \
		$(GO) build -o $(BIN)/plugins/$$p ./contrib/$$p || exit 1; done

install: build
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/gatehouse/plugins \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/sysctl.d $(DESTDIR)$(PREFIX)/share/doc/gatehouse
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/gatehouse
	install -m 0755 $(BIN)/gatehoused $(DESTDIR)$(PREFIX)/sbin/gatehoused
	install -m 0755 $(BIN)/gatehouse $(DESTDIR)$(PREFIX)/bin/gatehouse
	install -m 0755 $(BIN)/plugins/* $(DESTDIR)$(PREFIX)/lib/gatehouse/plugins/
	install -m 0644 contrib/systemd/gatehoused.service $(DESTDIR)$(UNITDIR)/gatehoused.service
	install -m 0644 contrib/systemd/90-gatehouse.conf $(DESTDIR)$(SYSCONFDIR)/sysctl.d/90-gatehouse.conf
	install -m 0640 contrib/examples/gatehouse.yaml $(DESTDIR)$(SYSCONFDIR)/gatehouse/gatehouse.yaml.example
	[ -e $(DESTDIR)$(SYSCONFDIR)/gatehouse/gatehouse.yaml ] || \
		install -m 0640 contrib/examples/gatehouse.yaml $(DESTDIR)$(SYSCONFDIR)/gatehouse/gatehouse.yaml
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/gatehouse/
	@echo "installed; next: edit $(SYSCONFDIR)/gatehouse/gatehouse.yaml, sysctl --system, systemctl enable --now gatehoused"

# System packages the labs need (iproute2, nftables, ping); installed with
# apt-get when missing and running as root.
deps:
	@sh contrib/scripts/install-test-deps.sh

tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

proto: tools
	PATH=$(TOOLS):$$PATH buf lint
	PATH=$(TOOLS):$$PATH buf generate

demo: deps build
	$(BIN)/gatehouse-demo --bin $(BIN)

vet:
	$(GO) vet ./...
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi

# make test runs as root: the labs build network namespaces and the test
# tools are installed with apt-get. Without root most labs would skip and
# the run would pass while testing far less.
root:
	@if [ "$$(id -u)" != 0 ]; then \
		echo "make test needs root: the labs build network namespaces and install Debian packages."; \
		echo "Run: sudo make test   (make unit runs the quick tests without root)"; exit 1; fi

# Every test: unit tests, fuzz seed corpora (run as ordinary tests), the
# proto freshness check, end-to-end tests and the namespace labs. The
# report ends with every skipped test and why (none expected as root).
test: root deps tools vet
	PATH=$(TOOLS):$$PATH $(GO) test -count=1 -timeout 20m -json ./... | $(GO) run ./internal/testreport
	$(GO) test -race -count=1 -timeout 10m ./core/... ./plugins/...

unit:
	$(GO) test -short ./...

# Go benchmarks (per packet, per lookup), then the namespace throughput
# comparison with wireguard-go and strongSwan kernel-libipsec (root).
bench: deps build $(TOOLS)/wireguard
	$(GO) test -run '^$$' -bench . -benchmem ./esp ./core/policy ./core/sad
	$(GO) run ./bench/throughput --bin $(BIN) --tools $(TOOLS)
	$(GO) run ./bench/ikesetup --bin $(BIN)
	$(GO) run ./bench/sessions --bin $(BIN)

$(TOOLS)/wireguard:
	GOBIN=$(TOOLS) $(GO) install golang.zx2c4.com/wireguard@$(WIREGUARD_GO_VERSION)

# Runs every native fuzz target for FUZZTIME each (make fuzz FUZZTIME=10m).
fuzz:
	@$(GO) list -f '{{.ImportPath}} {{.Dir}}' ./... | while read pkg dir; do \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
			echo "== $$pkg $$f ($(FUZZTIME))"; \
			before=$$(ls $$dir/testdata/fuzz/$$f 2>/dev/null | wc -l); \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg 2>&1 | tee /tmp/gatehouse-fuzz.log; \
			if grep -q '^FAIL' /tmp/gatehouse-fuzz.log; then \
				after=$$(ls $$dir/testdata/fuzz/$$f 2>/dev/null | wc -l); \
				if [ "$$after" -eq "$$before" ] && grep -q 'context deadline exceeded' /tmp/gatehouse-fuzz.log; then \
					echo "   (no input saved: Go 1.26's fuzz coordinator tripping on its own -fuzztime deadline, golang/go#75804; not a finding)"; \
				else \
					echo "   $$f failed (above); a crashing input, if one was found, is in $$dir/testdata/fuzz/$$f"; exit 1; \
				fi; \
			fi; \
		done; \
	done

clean:
	rm -rf $(BIN)
