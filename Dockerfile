# kbroker's container image: the static binary and nothing else, so it builds
# with no base image to pull. Build it with `make image`, which compiles
# bin/kbroker (CGO_ENABLED=0) and stages bin/image/ (passwd, /tmp, data dirs)
# first; a plain `docker build .` without those fails at the first COPY.
FROM scratch

# /etc/passwd and /etc/group name the unprivileged user; /tmp is 1777.
COPY bin/image/root/ /
COPY cmd/kbroker/docker.properties /etc/kbroker/server.properties
COPY bin/kbroker /kbroker
# Data directories owned by the broker's user. A fresh named volume mounted on
# either path starts with this ownership, so the broker can write to it.
COPY --chown=1000:1000 bin/image/data/ /var/lib/kafka/
COPY --chown=1000:1000 bin/image/data/ /bitnami/kafka/

USER 1000:1000
ENV TMPDIR=/tmp
EXPOSE 9092
VOLUME ["/var/lib/kafka/data"]
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 CMD ["/kbroker", "healthcheck"]
ENTRYPOINT ["/kbroker"]
CMD ["/etc/kbroker/server.properties"]
