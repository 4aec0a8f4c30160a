# Crossroads gateway image: build with the same deps script as everyone else, run as non-root
# with runtime libraries only. Mount or bake a config and point CROSSROADS_CONFIG at it.
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY deps/install.sh deps/install.sh
RUN deps/install.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -DCR_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build -j"$(nproc)" --target crossroads \
 && strip build/crossroads

FROM debian:bookworm-slim
COPY deps/install.sh /tmp/install.sh
RUN /tmp/install.sh runtime && rm -rf /var/lib/apt/lists/* /tmp/install.sh \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin crossroads
COPY --from=build /src/build/crossroads /usr/local/bin/crossroads
COPY config/ /etc/crossroads/
USER crossroads
ENV CROSSROADS_CONFIG=/etc/crossroads/demo.json \
    CROSSROADS_LISTEN=0.0.0.0:8080
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/crossroads"]
CMD ["serve"]
