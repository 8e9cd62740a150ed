# frozen_string_literal: true

# The jobs of `WORKLOAD=sidekiq bin/rake bench` (bench/sidekiq/bench.rb) and of the soak
# (bench/soak/sidekiq.rb): Sidekiq's heavyweight case, busy job threads that build strings,
# as the seed's 200 MB → 2 GB.
# Works with Debian 12's Sidekiq 6.4 (redis-rb 4.8) and Debian 13's Sidekiq 7.3.
$LOAD_PATH.unshift(File.expand_path("../../lib", __dir__))
require "json"
require "sidekiq"
require "bloat_probe"
require "bloat_probe/sidekiq"
require_relative "../../rails-app/lib/log_uniform"
require_relative "../../rails-app/lib/stats_document"

module BenchJobs
  # Keys the bench reads; the bench's Redis is its own, so nothing else is there.
  DURATIONS = "bloat_probe_bench:job_seconds"
  STATS = "bloat_probe_bench:stats"
  # Strings kept across jobs: 1% of those built, the newest KEPT_LIMIT of them (about
  # 9 MB at the mean size of 4.5 KB), like a cache that a long-running worker fills.
  # Scattered through every arena, they pin the freed space around them.
  KEPT_LIMIT = 2_000
  # Strings of 24 B to 32 KiB, log-uniform: many small, a few large.
  SIZES = 24..(32 * 1024)

  @kept = []
  @lock = Mutex.new

  def self.keep(string)
    @lock.synchronize do
      @kept << string
      @kept.shift if @kept.size > KEPT_LIMIT
    end
  end

  def self.record(key, value)
    Sidekiq.redis { |redis| redis.call("RPUSH", key, value) }
  end
end

# Builds `count` strings, keeps 1% of them in the shared cache, holds all of them until
# it ends when `hold` (a heavy job), and records how long it took.
class StringsJob
  include Sidekiq::Job
  sidekiq_options retry: false

  def perform(count, seed, hold)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    random = Random.new(seed)
    size = LogUniform.new(BenchJobs::SIZES, random: random)
    held = []
    count.times do
      string = "x" * size.draw
      BenchJobs.keep(string) if random.rand < 0.01
      held << string if hold
    end
    BenchJobs.record(BenchJobs::DURATIONS, Process.clock_gettime(Process::CLOCK_MONOTONIC) - started)
  end
end

# The export: a heavy job that holds all it builds until it ends.
class ExportJob < StringsJob
end

# What BloatProbe sees in this process, for the bench's table.
class ProbeJob
  include Sidekiq::Job
  sidekiq_options retry: false

  def perform
    BenchJobs.record(BenchJobs::STATS, JSON.generate(StatsDocument.take))
  end
end

# redis-rb 4.8 (Debian 12) warns on each of Sidekiq 6.4's pipelined calls, once per job:
# notices of its own API change, not errors, which would bury the log.
Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)
