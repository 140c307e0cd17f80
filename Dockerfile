# tollgate container: the release binary on a slim Debian base, run as a non-root user.
#   docker build -t tollgate .
#   docker run -p 8080:8080 -p 8081:8081 -e TOLLGATE_ADMIN_TOKEN=... -e OPENAI_API_KEY=... \
#     -v tollgate-data:/var/lib/tollgate tollgate
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tollgate

FROM debian:bookworm-slim
# A fixed numeric uid/gid (10001), so orchestrators can check the user is not root
# (Kubernetes' runAsNonRoot only trusts a numeric USER) and volumes can be given to it.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 tollgate \
    && useradd --uid 10001 --gid tollgate --home-dir /var/lib/tollgate --no-create-home \
        --shell /usr/sbin/nologin tollgate \
    && mkdir -p /var/lib/tollgate && chown tollgate:tollgate /var/lib/tollgate
COPY --from=build /src/target/release/tollgate /usr/local/bin/tollgate
COPY config/container.toml /etc/tollgate/tollgate.toml
USER 10001:10001
WORKDIR /var/lib/tollgate
# The SQLite database (the default) and the cost journal live in /var/lib/tollgate:
# mount a volume there (one per replica) so a restart keeps them.
# Listen on all interfaces inside the container; the admin API then needs a token.
ENV TOLLGATE_CONFIG=/etc/tollgate/tollgate.toml
EXPOSE 8080 8081
ENTRYPOINT ["tollgate"]
CMD ["serve"]
