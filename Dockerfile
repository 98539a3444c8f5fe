# The agent image: one static binary on a distroless base. Build with `docker build -t nftpolicy .`.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace

# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY api/ api/
COPY cmd/nftpolicy/ cmd/nftpolicy/
COPY controllers/ controllers/
COPY nft/ nft/
COPY selectors/ selectors/

# Netlink and nftables are spoken in Go: no cgo, so the binary runs on the static base.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags="-s -w" -o nftpolicy ./cmd/nftpolicy

# The agent runs as root: NET_ADMIN and NET_RAW are granted to the container (see
# config/manager/manager.yaml) and only root's capability set receives them without ambient capabilities.
FROM gcr.io/distroless/static-debian12
WORKDIR /
COPY --from=builder /workspace/nftpolicy /nftpolicy
ENTRYPOINT ["/nftpolicy"]
