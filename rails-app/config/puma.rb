# frozen_string_literal: true

# Read by `bin/rails server` (and `bundle exec rails server`) as by `puma -C config/puma.rb`.
# One process, 25 threads: Sidekiq's old default concurrency, and enough threads to give
# glibc a reason to create its full 8 × cores arenas.
threads_count = ENV.fetch("RAILS_MAX_THREADS", 25).to_i
threads threads_count, threads_count
workers 0

# Loopback unless BINDING says otherwise (the Docker image listens on 0.0.0.0). BINDING
# and PORT are the variables `rails server` itself reads; config/boot.rb gives it the same
# loopback default.
bind "tcp://#{ENV.fetch("BINDING", "127.0.0.1")}:#{ENV.fetch("PORT", 3000)}"
environment ENV.fetch("RAILS_ENV", "development")
