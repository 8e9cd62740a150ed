# frozen_string_literal: true

# One process, 25 threads: Sidekiq's old default concurrency, and enough threads to give
# glibc a reason to create its full 8 × cores arenas.
threads_count = ENV.fetch("RAILS_MAX_THREADS", 25).to_i
threads threads_count, threads_count
workers 0

# Loopback unless told otherwise (docker-compose binds 0.0.0.0 inside the container).
bind "tcp://#{ENV.fetch("BIND", "127.0.0.1")}:#{ENV.fetch("PORT", 3000)}"
environment ENV.fetch("RAILS_ENV", "development")
