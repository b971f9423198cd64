# kbroker — see README.md. `make run` starts one broker; `make test` runs what CI runs.
GO        ?= go
BIN       := bin/kbroker
FUZZTIME  ?= 10s

.PHONY: build run test unit fuzz compat bench clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/kbroker

run: build
	./$(BIN) cmd/kbroker/server.properties --override log.dirs=./data

test: build unit fuzz compat

unit:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 10m ./...

# Bounded fuzzing of the frame/request decoder and the batch validator.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzReadRequest$$' -fuzztime=$(FUZZTIME) ./protocol
	$(GO) test -run='^$$' -fuzz='^FuzzValidate$$' -fuzztime=$(FUZZTIME) ./protocol/batch

compat: build
	cd compat-tests && KBROKER_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 15m ./...

bench: build
	cd bench && $(GO) run . -kbroker $(CURDIR)/$(BIN)

clean:
	rm -rf bin

# Container images, FROM scratch around static binaries (no base image is
# pulled). bin/image/ stages what scratch lacks: passwd/group entries for the
# unprivileged user 1000, a 1777 /tmp, and data directories owned by 1000.
IMAGE         ?= kbroker:latest
EXAMPLE_IMAGE ?= kbroker-example-app:latest
DOCKER        ?= docker

.PHONY: image example-image

image: build
	rm -rf bin/image
	mkdir -p bin/image/root/etc bin/image/root/tmp bin/image/data/data
	chmod 1777 bin/image/root/tmp
	printf 'root:x:0:0:root:/:/sbin/nologin\nkbroker:x:1000:1000:kbroker:/var/lib/kafka:/sbin/nologin\n' > bin/image/root/etc/passwd
	printf 'root:x:0:\nkbroker:x:1000:\n' > bin/image/root/etc/group
	DOCKER_BUILDKIT=0 $(DOCKER) build -q -t $(IMAGE) -f Dockerfile .

# The producer/consumer of examples/app, for the example stack and the docker tests.
example-image:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/example-app ./examples/app
	DOCKER_BUILDKIT=0 $(DOCKER) build -q -t $(EXAMPLE_IMAGE) -f examples/app/Dockerfile .
