# rails-app with the bloat_probe gem, for people without Debian at hand (macOS).
#
# Three stages: `build` compiles the Rust extension; `runtime` is Debian with Ruby, the
# app's gems from Debian's packages and the allocators; `lock` resolves Gemfile.lock on
# top of `runtime` (with the test group's gems, which the image itself leaves out). The
# image is `runtime` plus the app, the lock and the built .so: no toolchain, no tests.
#
# STACK picks the Debian release, and with it Ruby, Rails, Puma and glibc: bookworm
# (Debian 12: Ruby 3.1, Rails 6.1, Puma 5.6, glibc 2.36) or trixie (Debian 13: Ruby 3.3,
# Rails 7.2, Puma 6.6, glibc 2.41). The bases are public images by default; where no
# registry can be reached, build local stand-ins from Debian's packages with
# bin/docker-images and pass them in:
#   eval "$(STACK=trixie bin/docker-images)" && docker-compose build
# Unset or empty, each takes its default (docker-compose passes the unset ones empty).
ARG STACK
ARG RUST_IMAGE
ARG RUNTIME_IMAGE

FROM ${RUST_IMAGE:-rust:1-${STACK:-bookworm}} AS build
# rb-sys reads Ruby's headers through bindgen (libclang); Ruby is Debian's, as at run time.
# (These names are the same on both releases; bin/install-packages has the ones that
# differ. Named here, so that editing that list does not compile the crates again.)
RUN apt-get update \
 && apt-get install -y --no-install-recommends ruby-dev libclang-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The dependencies in a layer of their own, so that editing the crate's source does not
# compile them again.
COPY Cargo.toml Cargo.lock ./
COPY ext/bloat_probe/Cargo.toml ext/bloat_probe/
COPY crates/core/Cargo.toml crates/core/
COPY crates/metrics_listener/Cargo.toml crates/metrics_listener/
COPY crates/cli/Cargo.toml crates/cli/
RUN for crate in ext/bloat_probe crates/core crates/metrics_listener crates/cli; do \
      mkdir "$crate/src" && touch "$crate/src/lib.rs"; done \
 && echo 'fn main() {}' > crates/cli/src/main.rs \
 && cargo build --release --locked -p bloat_probe -p bloat_probe_cli \
 && rm -rf ext/bloat_probe/src crates/*/src
COPY ext/bloat_probe/src ext/bloat_probe/src
COPY crates crates
# The extension, and bloat-probe (the command that reads a process from outside).
RUN touch ext/bloat_probe/src/lib.rs crates/core/src/lib.rs crates/metrics_listener/src/lib.rs crates/cli/src/main.rs \
 && cargo build --release --locked -p bloat_probe -p bloat_probe_cli \
 && mkdir /ext && cp target/release/libbloat_probe.so /ext/bloat_probe.so \
 # RubyGems' mark of a built extension (see bloat_probe.gemspec's extension_dir).
 && touch /ext/gem.build_complete \
 && cp target/release/bloat-probe /usr/local/bin/bloat-probe

FROM ${RUNTIME_IMAGE:-debian:${STACK:-bookworm}-slim} AS runtime
COPY bin/install-packages /usr/local/bin/
RUN install-packages runtime && rm -rf /var/lib/apt/lists/* /usr/local/bin/install-packages
# LD_PRELOAD=libjemalloc.so.2 needs no path: ld.so finds the bare name in its cache,
# under /usr/lib/x86_64-linux-gnu or /usr/lib/aarch64-linux-gnu alike.

FROM runtime AS lock
RUN apt-get update \
 && apt-get install -y --no-install-recommends ruby-capybara ruby-selenium-webdriver \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY bloat_probe.gemspec ./
COPY lib/bloat_probe/version.rb lib/bloat_probe/
COPY rails-app/Gemfile rails-app/
RUN cd rails-app && bundle lock --local

FROM runtime
WORKDIR /app
COPY bloat_probe.gemspec ./
COPY lib lib
COPY rails-app rails-app
COPY --from=lock /app/rails-app/Gemfile.lock rails-app/
COPY --from=build /ext/ lib/bloat_probe/
COPY --from=build /usr/local/bin/bloat-probe /usr/local/bin/
WORKDIR /app/rails-app
ENV RAILS_ENV=production \
    BUNDLE_WITHOUT=test \
    BUNDLE_FROZEN=true \
    BINDING=0.0.0.0 \
    PORT=3000 \
    RAILS_MAX_THREADS=25 \
    RAILS_LOG_TO_STDOUT=1
RUN bundle check && mkdir -p tmp/pids log
EXPOSE 3000
# Waits for the database and prepares it, then runs the command: Puma, 25 threads.
ENTRYPOINT ["bin/docker-entrypoint"]
CMD ["bundle", "exec", "rails", "server"]
