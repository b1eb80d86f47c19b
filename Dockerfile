# plumb: a static binary on a minimal base image.
#   docker build -t plumb .
#   docker run -p 50051:50051 -v plumb-data:/data plumb        # bbolt store in the volume
#   docker run -p 50051:50051 -e PLUMB_STORE=postgres://… plumb  # replicas share PostgreSQL
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
EXPOSE 50051 9090
ENTRYPOINT ["/plumb"]
CMD ["serve", "--addr", ":50051", "--metrics-addr", ":9090"]
