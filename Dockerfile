# rails-app with the bloat_probe gem, for people without Debian at hand (macOS).
# The official Rust image on Debian bookworm: the same Debian as bin/setup expects.
FROM rust:1-bookworm

WORKDIR /app
COPY . .
# The same set-up as on a Debian machine; the database is the `db` container's.
RUN bin/setup --no-database && rm -rf target/release/build target/release/deps

WORKDIR /app/rails-app
ENV RAILS_ENV=production \
    BIND=0.0.0.0 \
    PORT=3000 \
    RAILS_MAX_THREADS=25 \
    RAILS_LOG_TO_STDOUT=1
EXPOSE 3000
CMD ["sh", "-c", "bin/rails db:prepare && exec bundle exec puma -C config/puma.rb"]
