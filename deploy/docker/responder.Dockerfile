# The responder: sentinel:local plus nft and the libraries it loads, to change the firewall (the
# `inet sentinel` table) of the network namespace it runs in. Needs CAP_NET_ADMIN at run time.
ARG TAG=local
FROM sentinel:${TAG}
COPY target/docker/nft/ /
