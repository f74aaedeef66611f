# outboxd on Debian bookworm: build stage with the -dev packages, a slim runtime.
FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config \
      libpq-dev librdkafka-dev libprotobuf-dev protobuf-compiler libgrpc++-dev \
      protobuf-compiler-grpc libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev \
      libcpp-httplib-dev prometheus-cpp-dev libsimdjson-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build -j"$(nproc)" --target outboxd kafka-mock

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 librdkafka1 libprotobuf32 \
      libabsl20220623 libgrpc++1.51 libcpp-httplib0.11 \
      libprometheus-cpp-core1.0 libsimdjson14 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/bin/outboxd /usr/local/bin/outboxd
USER nobody
ENTRYPOINT ["outboxd"]
CMD ["--help"]
