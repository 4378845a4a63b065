# The responder: sentinel:local plus nft and the libraries it loads, to change the firewall (the
# `inet sentinel` table) of the network namespace it runs in. It runs as root with CAP_NET_ADMIN as its
# only capability (docker run --cap-drop ALL --cap-add NET_ADMIN): Docker gives a capability it adds for
# a non-root user only in the bounding set, never in the effective set, so `nft` could not use it as
# svcuser. Its data directory is root's, /var/lib/sentinel-responder (root without CAP_FOWNER or CAP_CHOWN
# could not take over svcuser's /var/lib/sentinel).
ARG TAG=local
FROM sentinel:${TAG}
COPY target/docker/nft/ /
COPY --chown=0:0 target/docker/sentinel/data/ /var/lib/sentinel-responder/
ENV SENTINEL__DATA_DIR=/var/lib/sentinel-responder
USER 0:0
WORKDIR /var/lib/sentinel-responder
VOLUME ["/var/lib/sentinel-responder"]
