# Builds the connectors-node image: a static binary on a distroless base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/connectors-node ./cmd/connectors-node

# The node plugin mounts tmpfs volumes, so it runs as root in a privileged
# container (see deploy/daemonset.yaml); the image carries nothing else.
FROM gcr.io/distroless/static-debian12
COPY --from=build /out/connectors-node /connectors-node
ENTRYPOINT ["/connectors-node"]
