# frozen_string_literal: true

require_relative "server"
require_relative "load"
require_relative "sidekiq_worker"

module AllocatorBench
  # What the bench drives, one configuration at a time: WORKLOAD=web (rails-app under
  # Puma, loaded by wrk) or WORKLOAD=sidekiq (a Sidekiq worker fed jobs through Redis).
  # Each starts its process, drives it to a count of requests or jobs, and keeps it
  # ticking during the idle tail.
  module Workloads
    # name: WORKLOAD's value; unit: what the load counts; rate: its throughput's unit;
    # server: the program, as the legend names it.
    Workload = Struct.new(:settings, :name, :unit, :rate, :server) do
      def process
        return "one #{server} process, #{settings.threads} threads" unless settings.workers.positive?

        "#{server} in cluster mode: a master and #{settings.workers} workers of #{settings.threads} threads"
      end
    end

    class Web < Workload
      def initialize(settings)
        super(settings, "web", "requests", "req/s", "Puma")
      end

      def total = settings.requests

      def describe
        "#{process}, serving rails-app (production) to wrk: " \
          "#{settings.requests} requests from #{settings.concurrency} clients, mix #{settings.mix}"
      end

      def start(config, log_path:)
        Server.new(config, threads: settings.threads, workers: settings.workers, log_path: log_path).start
      end

      # Yields the count answered as it grows.
      def drive(server, &progress)
        load = Load.new(requests: settings.requests, concurrency: settings.concurrency, mix: settings.mix,
                        max_seconds: 600).run(server.port, &progress)
        { rps: load[:rps], p50_ms: load[:p50_us] / 1000.0, p99_ms: load[:p99_us] / 1000.0, requests: load[:requests],
          errors: load[:errors] }
      end

      # An ordinary page view.
      def tick(server)
        server.get("/posts?page=#{rand(1..20)}")
      end
    end

    class Sidekiq < Workload
      # Most jobs build STRINGS strings of 24 B to 32 KiB (log-uniform) and keep 1% in a
      # cache the worker shares. One in HEAVY_EVERY is heavy (an export, a report): it
      # builds HEAVY_STRINGS and holds them until it ends, about 135 MB. Each thread that
      # runs one leaves its arena at that high-water mark, as the web mix's heavy request
      # does; with two arenas, only the heavy jobs running at once add up. Measured here
      # (glibc's RSS ÷ arena2's at the end of the load, 3 rounds): light jobs alone of 300,
      # 500 or 3000 strings 1.9-4.3; one heavy job in 25, 2.7-3.8; in 100, 3.6-4.6; in
      # 200, 3.9-4.6.
      STRINGS = 500
      HEAVY_STRINGS = 30_000
      HEAVY_EVERY = 200

      def initialize(settings)
        super(settings, "sidekiq", "jobs", "jobs/s", "Sidekiq")
      end

      def total = settings.jobs

      def describe
        "#{process} (sidekiq -c #{settings.threads}) with its own redis-server: " \
          "#{settings.jobs} jobs enqueued at once, each building #{STRINGS} strings of 24 B to 32 KiB " \
          "and keeping 1%, " \
          "one in #{HEAVY_EVERY} building #{HEAVY_STRINGS} and holding them until it ends"
      end

      def start(config, log_path:)
        SidekiqWorker.new(config, threads: settings.threads, log_path: log_path).start
      end

      # Job p50/p99 are the jobs' own run times, not their wait in the queue.
      def drive(worker, &progress)
        result = worker.run_jobs(settings.jobs, max_seconds: 600, job: method(:job), &progress)
        times = result[:seconds].sort
        { rps: times.size / result[:wall],
          p50_ms: percentile(times, 0.50) * 1000, p99_ms: percentile(times, 0.99) * 1000,
          requests: times.size, errors: settings.jobs - times.size, redis_pid: worker.redis_pid }
      end

      # The i-th job: [class, [strings, seed, hold them all]]; an ExportJob is a StringsJob
      # that holds what it builds, named apart so that the attribution can tell them.
      def job(index)
        heavy = index % HEAVY_EVERY == HEAVY_EVERY - 1
        heavy ? ["ExportJob", [HEAVY_STRINGS, index, true]] : ["StringsJob", [STRINGS, index, false]]
      end

      # A small job, as a quiet worker still gets now and then.
      def tick(worker)
        worker.tick
      end

      private

      def percentile(sorted, share)
        sorted[((sorted.size - 1) * share).round]
      end
    end

    ALL = { "web" => Web, "sidekiq" => Sidekiq }.freeze

    # name: a WORKLOAD that Settings.from_env has already checked against ALL.
    def self.for(name, settings)
      ALL.fetch(name).new(settings)
    end
  end
end
