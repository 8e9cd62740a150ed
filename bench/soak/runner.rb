# frozen_string_literal: true

require_relative "clock"
require "fileutils"
require "json"
require "time"
require "bloat_probe/retirement"
require_relative "../allocator_bench/configuration"
require_relative "../allocator_bench/server"
require_relative "../allocator_bench/sidekiq_worker"
require_relative "load"
require_relative "sampler"
require_relative "prometheus"
require_relative "checks"
require_relative "report"

module Soak
  # rails-app as a Puma cluster of 2 workers with the whole probe on (the reporter at 1 s,
  # attribution, the guard with a budget the load crosses, the metrics port), Sidekiq with
  # its integration, a Prometheus scraping both, under Load for `duration` seconds; then
  # the Checks, and the report.
  class Runner
    include Clock

    WORKERS = 2
    THREADS = 8
    SIDEKIQ_THREADS = 5
    BUDGET = 300 << 20
    STRIKES = 2
    GUARD_INTERVAL = 1
    REPORT_INTERVAL = 1
    JOBS_TIMEOUT = 120
    SIDEKIQ_JOBS = File.expand_path("sidekiq.rb", __dir__)

    def initialize(duration:, out:, log: $stdout)
      @duration = duration
      @out = out
      @log = log
      FileUtils.mkdir_p(out)
    end

    # The checks; the report is in `out`.
    def run
      start_servers
      started = monotonic
      @started_at = Time.now.to_f
      deadline = started + @duration
      load = Load.new(port: @puma.port, sidekiq: @sidekiq, deadline: deadline).start
      sampler = Sampler.new(master: @puma.pid, sidekiq: @sidekiq.pid, port: @puma.port, started: started,
                            deadline: deadline, footprint_every: [@duration / 60.0, 10].max).start
      progress(started, deadline, load)
      load.join
      sampler.join
      jobs_done = wait_for_jobs(load.jobs_enqueued)
      run = gather(load, sampler, jobs_done, monotonic - @scraping_since)
      checks = Checks.new(run).all
      Report.new(run, checks, out: @out).write
      checks
    ensure
      AllocatorBench::ChildProcess.stop_all
    end

    private

    def start_servers
      @metrics_port = AllocatorBench::ChildProcess.free_port
      sidekiq_port = AllocatorBench::ChildProcess.free_port
      @sidekiq = AllocatorBench::SidekiqWorker.new(
        configuration("sidekiq", "BLOAT_PROBE_METRICS_PORT" => sidekiq_port.to_s),
        threads: SIDEKIQ_THREADS, log_path: File.join(@out, "sidekiq.log"), jobs: SIDEKIQ_JOBS
      ).start
      @puma = AllocatorBench::Server.new(configuration("puma", puma_env), threads: THREADS, workers: WORKERS,
                                                                          log_path: File.join(@out, "puma.log")).start
      @prometheus = Prometheus.new(dir: @out, targets: { "puma" => @metrics_port, "sidekiq" => sidekiq_port }).start
      @scraping_since = monotonic
      @log.puts "soak: Puma #{@puma.pid} on #{@puma.port} (metrics #{@metrics_port}), Sidekiq #{@sidekiq.pid} " \
                "(metrics #{sidekiq_port}), Prometheus #{@prometheus.url}; #{@duration} s"
    end

    def puma_env
      # A diagnosis is reused for up to BLOAT_PROBE_DIAGNOSIS_INTERVAL: one a second keeps
      # every figure within two report intervals of the scrape.
      { "BLOAT_PROBE_REPORT_INTERVAL" => REPORT_INTERVAL.to_s, "BLOAT_PROBE_DIAGNOSIS_INTERVAL" => "1",
        "BLOAT_PROBE_GUARD" => "on", "BLOAT_PROBE_GUARD_BUDGET" => "#{BUDGET >> 20}M",
        "BLOAT_PROBE_GUARD_STRIKES" => STRIKES.to_s, "BLOAT_PROBE_GUARD_INTERVAL" => GUARD_INTERVAL.to_s,
        "BLOAT_PROBE_METRICS_PORT" => @metrics_port.to_s, "RAILS_LOG_LEVEL" => "info" }
    end

    def configuration(name, env)
      AllocatorBench::Configuration.new(name: name, summary: name,
                                        env: { "BLOAT_PROBE_REPORT_INTERVAL" => REPORT_INTERVAL.to_s, **env })
    end

    # A line every tenth of the run (at least every minute): time left, requests, restarts.
    def progress(started, deadline, load)
      step = [@duration / 10.0, 60].min
      while monotonic < deadline
        sleep [step, deadline - monotonic].min.clamp(0, step)
        pages = load.outcomes[:page_views].values.sum
        @log.puts format("soak: %<t>4d s of %<d>d, %<p>d page views, %<j>d jobs enqueued, %<r>d workers retired",
                         t: (monotonic - started).round, d: @duration, p: pages, j: load.jobs_enqueued,
                         r: restarts.size)
      end
    end

    def wait_for_jobs(enqueued)
      deadline = monotonic + JOBS_TIMEOUT
      done = 0
      loop do
        done = @sidekiq.jobs_done
        break if done >= enqueued || monotonic > deadline

        sleep 0.5
      end
      done
    end

    def gather(load, sampler, jobs_done, scraped_for)
      { date: Time.now.utc.iso8601, started_at: @started_at, duration: @duration, steady_from: @duration / 6.0,
        budget: BUDGET, report_interval: REPORT_INTERVAL,
        guard_reaction: (STRIKES * GUARD_INTERVAL) + BloatProbe::Retirement::DRAIN + 1,
        workers: WORKERS, threads: THREADS, jobs: %w[puma sidekiq], scraped_for: scraped_for,
        outcomes: load.outcomes, page_view_seconds: quantiles(load.latencies),
        jobs_enqueued: load.jobs_enqueued, jobs_done: jobs_done,
        restarts: restarts, samples: sampler.samples, footprints: sampler.footprints,
        up: @prometheus.samples("up", scraped_for),
        scrape_durations: @prometheus.samples("scrape_duration_seconds", scraped_for),
        diagnosis_times: @prometheus.samples("bloat_probe_diagnosis_timestamp_seconds", scraped_for) }
    end

    def quantiles(values)
      sorted = values.sort
      at = ->(q) { sorted[((sorted.size - 1) * q).round]&.round(4) }
      { count: sorted.size, p50: at.call(0.5), p99: at.call(0.99), max: sorted.last&.round(4) }
    end

    # The guard's restarts as the Puma log has them: pid, reason, verdict, memory.
    def restarts
      File.foreach(File.join(@out, "puma.log")).filter_map do |line|
        unless line.include?("bloat_probe guard") && line.include?("action=restart") && line.include?("restarted=true")
          next
        end

        fields = line.scan(/(\w+)=(\S+)/).to_h
        { pid: fields["pid"].to_i, reason: fields["reason"], verdict: fields["verdict"],
          before_mib: fields["before_mib"].to_f }
      end
    end
  end
end
