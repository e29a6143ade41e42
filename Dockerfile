# syntax=docker/dockerfile:1
# credproxy: static binary on distroless, running as an unprivileged user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The same script CI uses, so the binary CI tests is the binary shipped.
RUN .ci/build-binary /out/credproxy "${VERSION}"

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/credproxy /credproxy
# 65532 is distroless' "nonroot"; numeric so that runAsNonRoot can verify it.
USER 65532:65532
# Reverse proxy and admin listener. They bind 127.0.0.1 by default: a
# sidecar shares the pod's loopback. A shared gateway sets the addresses.
EXPOSE 8080 9901
ENTRYPOINT ["/credproxy"]
CMD ["run"]
