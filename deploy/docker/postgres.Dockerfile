# PostgreSQL for Sentinel's central store (Debian's postgresql, its libraries and share files; busybox as
# /bin/sh, which initdb and the entrypoint need).
FROM scratch
COPY target/docker/postgres/rootfs/ /
COPY --chown=10003:10003 target/docker/postgres/data/ /var/lib/postgresql/
ENV PGDATA=/var/lib/postgresql/data TZ=UTC
USER 10003:10003
VOLUME ["/var/lib/postgresql"]
EXPOSE 5432
HEALTHCHECK --interval=2s --timeout=3s --start-period=30s --retries=3 CMD ["/usr/local/bin/entrypoint", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/entrypoint"]
CMD ["serve"]
