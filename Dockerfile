# plumb: a static binary on a minimal base image, serving gRPC (50051), HTTP (8080: Connect,
# gRPC-Web, the badge) and metrics (9090), with bearer tokens from /etc/plumb/tokens (a file of
# "score TOKEN" and "admin TOKEN" lines; README "Tokens and roles"): a container listens beyond
# loopback, so plumb serves it only with tokens.
#   docker build -t plumb .
#   docker run -p 50051:50051 -p 8080:8080 -v "$PWD/tokens:/etc/plumb/tokens:ro" -v plumb-data:/data plumb
#   docker run … -e PLUMB_STORE=postgres://… plumb               # replicas share PostgreSQL
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/plumb ./cmd/plumb \
 && mkdir -p /out/data

# distroless/static: CA certificates and tzdata, no shell; runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/plumb /plumb
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV PLUMB_STORE=/data/plumb.db
EXPOSE 50051 8080 9090
ENTRYPOINT ["/plumb"]
CMD ["serve", "--addr", ":50051", "--http-addr", ":8080", "--metrics-addr", ":9090", "--metrics-public", "--auth-tokens", "/etc/plumb/tokens"]
