# Redis for Sentinel's bus (Debian's redis-server and its libraries, nothing else).
FROM scratch
COPY target/docker/redis/rootfs/ /
COPY --chown=10002:10002 target/docker/redis/data/ /data/
USER 10002:10002
WORKDIR /data
VOLUME ["/data"]
EXPOSE 6379
HEALTHCHECK --interval=2s --timeout=3s --start-period=10s --retries=3 CMD ["/usr/bin/redis-cli", "ping"]
ENTRYPOINT ["/usr/bin/redis-server"]
# Alone, it answers only on loopback (protected mode, no password); the Compose file sets a password.
CMD ["--protected-mode", "yes", "--dir", "/data", "--appendonly", "yes"]
