# Sentinel: the static binary and nothing else (no shell, no libc). Built by deploy/docker/build-images.sh.
FROM scratch
COPY target/docker/sentinel/rootfs/ /
COPY --chown=10001:10001 target/docker/sentinel/data/ /var/lib/sentinel/
# Logs the demonstration's targets write (a volume mounted here starts owned by svcuser).
COPY --chown=10001:10001 target/docker/sentinel/data/ /var/log/sentinel/
ENV SENTINEL_CONFIG=/etc/sentinel/sentinel.yml \
    SENTINEL__DATA_DIR=/var/lib/sentinel \
    TZ=UTC
USER 10001:10001
WORKDIR /var/lib/sentinel
VOLUME ["/var/lib/sentinel"]
EXPOSE 8080
# Ready (not merely alive): the daemon answers /ready over its Unix socket in the data directory.
HEALTHCHECK --interval=2s --timeout=3s --start-period=30s --retries=3 CMD ["/usr/bin/sentinel", "healthcheck"]
ENTRYPOINT ["/usr/bin/sentinel"]
CMD ["run"]
