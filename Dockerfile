# tollgate container: static-ish release binary on a slim Debian base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tollgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/tollgate tollgate \
    && mkdir -p /var/lib/tollgate && chown tollgate /var/lib/tollgate
COPY --from=build /src/target/release/tollgate /usr/local/bin/tollgate
COPY config/container.toml /etc/tollgate/tollgate.toml
USER tollgate
WORKDIR /var/lib/tollgate
# Listen on all interfaces inside the container; the admin API then needs a token.
ENV TOLLGATE_CONFIG=/etc/tollgate/tollgate.toml
EXPOSE 8080 8081
ENTRYPOINT ["tollgate"]
CMD ["serve"]
