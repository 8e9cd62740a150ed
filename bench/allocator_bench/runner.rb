# frozen_string_literal: true

require "fileutils"
require_relative "progress"
require_relative "records"
require_relative "workloads"

module AllocatorBench
  # Runs every configuration, REPEAT rounds interleaved, and returns one run record each.
  class Runner
    attr_reader :workload

    def initialize(settings)
      @settings = settings
      @workload = Workloads.for(settings.workload, settings)
      @progress = Progress.new(settings.configs.size * settings.repeat)
      @started = Time.now
    end

    def run
      FileUtils.mkdir_p(@settings.results_dir)
      runs = []
      # Interleaved rounds (glibc, arena2, …, glibc, arena2, …), so that drift in the
      # machine's load touches every configuration alike.
      @settings.repeat.times do |round|
        @settings.configs.each { |config| runs << run_one(config, round + 1) }
      end
      @progress.finish
      runs
    ensure
      ChildProcess.stop_all
    end

    def stamp
      @started.utc.strftime("%Y%m%d-%H%M%S")
    end

    def elapsed
      (Time.now - @started).round
    end

    private

    def label(config, round, text, phase, done = 0.0)
      @progress.update("#{config.name}#{@settings.repeat > 1 ? " (round #{round})" : ""}: #{text}", phase, done)
    end

    def run_one(config, round)
      if (why = config.missing(cluster: @settings.workers.positive?))
        @progress.finish_run
        return Skipped.new(config: config.name, round: round, reason: why)
      end

      log_path = File.join(@settings.results_dir, "#{stamp}-#{config.name}-#{round}.log")
      boot_started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      label(config, round, "booting", :boot)
      begin
        server = @workload.start(config, log_path: log_path)
      rescue BootError => e
        @progress.finish_run
        warn "\n#{config.name}: #{e.message}; the tail of #{log_path}:\n#{ChildProcess.log_tail(log_path)}"
        return Failed.new(config: config.name, round: round, reason: e.message)
      end
      measure(server, config, round, boot_started)
    ensure
      server&.stop
    end

    def measure(server, config, round, boot_started)
      sampler = Sampler.new(server, interval: @settings.sample_interval, started_at: boot_started).start
      cluster = {}
      rss_start, cluster[:start] = memory_now(server)
      stats_start = server.stats
      sampler.phase = "load"
      total = @workload.total
      load = @workload.drive(server) do |done|
        label(config, round, "load, #{done}/#{total} #{@workload.unit}", :load, done.fdiv(total))
      end
      rss_end_of_load, cluster[:end_of_load] = memory_now(server)
      sampler.phase = "idle"
      idle_tail(server, config, round)
      rss_after_idle, cluster[:after_idle] = memory_now(server)
      @progress.finish_run
      stats = server.stats
      sampler.stop
      Measured.new(config: config.name, round: round, server_pid: server.pid, rss_start: rss_start,
                   rss_end_of_load: rss_end_of_load, rss_after_idle: rss_after_idle, **load, **arena_figures(stats),
                   **attribution_figures(stats_start, stats), **cluster_figures(cluster), trimmer: stats.trimmer,
                   rss_peak: sampler.peak, samples: sampler.samples)
    end

    # What the server costs now, and in cluster mode its processes' reading: one read of
    # each process's smaps_rollup for both.
    def memory_now(server)
      cluster = server.cluster_memory
      [cluster ? cluster.pss_sum : server.rss, cluster]
    end

    # In cluster mode: the workers' shared fraction at the start, the end of the load and
    # after the idle tail, their mean private memory at the last two, and each one's after
    # the idle tail. Nothing in single mode.
    def cluster_figures(cluster)
      return {} if cluster.values.all?(&:nil?)

      start, end_of_load, after_idle = cluster.values_at(:start, :end_of_load, :after_idle)
      { shared_fraction_start: start&.shared_fraction, shared_fraction_end_of_load: end_of_load&.shared_fraction,
        shared_fraction_after_idle: after_idle&.shared_fraction,
        worker_private_end_of_load: end_of_load&.mean_worker_private,
        worker_private_after_idle: after_idle&.mean_worker_private, workers_private: after_idle&.worker_private }
    end

    # The load stops, but not all traffic: a trickle of ordinary page views or small jobs
    # (4 a second), as a server sees between busy spells. jemalloc without background
    # threads purges an arena only when some thread allocates there, so a silent process
    # would keep every page it has.
    def idle_tail(server, config, round)
      deadline = monotonic + @settings.idle
      while (left = deadline - monotonic).positive?
        label(config, round, "idle tail, #{left.ceil} s left", :idle, 1 - left / @settings.idle)
        @workload.tick(server)
        sleep 0.25
      end
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    # What each endpoint or job raised between two readings of the server, the largest
    # five, and how far malloc_info says the arenas' high-water marks rose meanwhile.
    def attribution_figures(start, finish)
      before = start.attribution.to_h { |entry| [entry.name, entry] }
      grown = finish.attribution.filter_map do |entry|
        was = before[entry.name]
        calls = entry.calls - (was&.calls || 0)
        next unless calls.positive?

        { name: entry.name, calls: calls, raised_bytes: entry.raised_bytes - (was&.raised_bytes || 0) }
      end
      grown.sort_by! { |entry| -entry[:raised_bytes] }
      marks = ->(stats) { stats.arena_stats.arenas&.sum(&:system_max) }
      { attribution: grown.first(5), attributed_rise: grown.sum { |entry| entry[:raised_bytes] },
        arena_rise: marks.call(finish) && marks.call(finish) - marks.call(start) }
    end

    # The server's arenas and verdict after the idle tail (a StatsDocument).
    def arena_figures(stats)
      arenas = stats.arena_stats
      figures = { allocator: arenas.allocator.to_s, allocator_version: arenas.allocator_version,
                  verdict: stats.diagnosis.verdict.to_s }
      return figures unless arenas.glibc?

      figures.merge(arena_count: arenas.arena_count, in_use: arenas.in_use, free: arenas.free,
                    rss_per_in_use: arenas.rss.to_f / arenas.in_use,
                    arenas: arenas.arenas.map { |arena| arena.to_h.slice(:index, :system, :in_use, :free) })
    end
  end
end
