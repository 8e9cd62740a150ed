# frozen_string_literal: true

require "bloat_probe/setting"

# Read by `bin/rails server` (and `bundle exec rails server`) as by `puma -C config/puma.rb`.
# Settings are parsed strictly: a bad one stops the boot, naming the variable.
setting = BloatProbe::Setting

# One process, 25 threads: Sidekiq's old default concurrency, and enough threads to give
# glibc a reason to create its full 8 × cores arenas.
threads_count = setting.integer("RAILS_MAX_THREADS", range: 1..1024, default: 25)
threads threads_count, threads_count

# WEB_CONCURRENCY as in a stock Rails app: 0 (the default) is one process; n > 0 forks n
# workers from a master that loaded the app once.
worker_count = setting.integer("WEB_CONCURRENCY", range: 0..64, default: 0)
workers worker_count
preload_app! if worker_count.positive?

# A log line with the verdict every BLOAT_PROBE_REPORT_INTERVAL seconds (default 60), and
# the history the dashboard charts; in cluster mode each worker reports for itself. The
# Trimmer and the Guard when their settings ask for them (see lib/puma/plugin/bloat_probe.rb).
plugin :bloat_probe

# Loopback unless BINDING says otherwise (the Docker image listens on 0.0.0.0). BINDING
# and PORT are the variables `rails server` itself reads; config/boot.rb gives it the same
# loopback default.
port = setting.integer("PORT", range: 1..65_535, default: 3000)
bind "tcp://#{ENV.fetch("BINDING", "127.0.0.1")}:#{port}"
environment ENV.fetch("RAILS_ENV", "development")
