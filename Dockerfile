# Builds the connectors-node image with Docker. `make image` builds the same
# contents without a container engine: the static binary at /connectors-node
# and Debian's CA roots, nothing else (the binary runs no program).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/connectors-node ./cmd/connectors-node

# The node plugin mounts tmpfs volumes, so it runs as root in a privileged
# container (see deploy/daemonset.yaml).
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/connectors-node /connectors-node
ENTRYPOINT ["/connectors-node"]
