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
CMD ["--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data", "--appendonly", "yes"]
