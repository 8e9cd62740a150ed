# frozen_string_literal: true

require "bloat_probe"
require "json"
require_relative "child_process"
require_relative "../../rails-app/lib/stats_document"

module AllocatorBench
  # A redis-server of the bench's own on a free loopback port: no persistence, no
  # password, gone with the bench.
  class RedisServer
    include ChildProcess

    attr_reader :url

    def initialize(log_path:)
      @log_path = log_path
    end

    def start
      port = ChildProcess.free_port
      @url = "redis://127.0.0.1:#{port}/0"
      command = ["redis-server", "--bind", "127.0.0.1", "--port", port.to_s, "--save", "", "--appendonly", "no",
                 "--protected-mode", "yes"]
      spawn_child({}, command, chdir: File.dirname(@log_path))
      wait_until(30, "redis-server") { reachable?(port) }
      self
    end

    private

    def reachable?(port)
      TCPSocket.new("127.0.0.1", port).close
      true
    rescue SystemCallError
      false
    end
  end

  # `sidekiq -c THREADS -r JOBS` (bench/sidekiq/bench.rb unless told), against its own Redis.
  class SidekiqWorker
    include ChildProcess

    JOBS = File.expand_path("../sidekiq/bench.rb", __dir__)
    BOOT_TIMEOUT = 60
    # Keys of bench/sidekiq/jobs.rb.
    DURATIONS = "bloat_probe_bench:job_seconds"
    STATS = "bloat_probe_bench:stats"

    def initialize(config, threads:, log_path:, jobs: JOBS)
      @config = config
      @threads = threads
      @log_path = log_path
      @jobs = jobs
    end

    def start
      connect
      env = { "REDIS_URL" => @redis.url, "MALLOC_ARENA_MAX" => nil, "LD_PRELOAD" => nil,
              "BLOAT_PROBE_TRIM_INTERVAL" => nil, "BLOAT_PROBE_TRIM_MIN" => nil,
              "RUBYOPT" => nil }.merge(@config.server_env)
      command = ["sidekiq", "-c", @threads.to_s, "-r", @jobs, "-e", "production"]
      spawn_child(env, command, chdir: File.dirname(@log_path))
      # Sidekiq registers itself in Redis once its job threads run.
      wait_until(BOOT_TIMEOUT, "sidekiq") { redis("SCARD", "processes").to_i.positive? }
      self
    end

    # The bench's own redis-server and a pool on it, before any Sidekiq runs.
    def connect
      require "sidekiq"
      @redis = RedisServer.new(log_path: @log_path.sub(/\.log\z/, "-redis.log")).start
      # A pool of this run's own: Sidekiq 7 keeps its global client's first Redis.
      @pool = Sidekiq::RedisConnection.create(url: @redis.url, size: 2)
      # redis-rb 4.8 (Debian 12) warns about Sidekiq 6.4's calls: its own API notices.
      Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)
      self
    end

    # Enqueues `count` jobs, the i-th as job.call(i) says ([class name, arguments]), in the
    # order it states them: a bulk push takes one class, so each run of one class is one
    # push, and an export stays where it falls among the light jobs.
    def enqueue(count, job)
      (0...count).each_slice(1000) do |slice|
        slice.map { |i| job.call(i) }.chunk_while { |a, b| a.first == b.first }.each do |run|
          push_bulk("class" => run.first.first, "args" => run.map(&:last))
        end
      end
    end

    # The classes of the jobs waiting in the default queue, in the order Sidekiq takes them
    # (it pushes at the head and fetches from the tail).
    def queued_classes
      redis("LRANGE", "queue:default", 0, -1).reverse.map { |payload| JSON.parse(payload).fetch("class") }
    end

    # Enqueues `count` jobs (see #enqueue) and yields the number done as it grows; returns
    # the jobs' own durations (seconds) and the wall time.
    def run_jobs(count, max_seconds:, job:)
      redis("DEL", DURATIONS)
      started = monotonic
      enqueue(count, job)
      loop do
        done = jobs_done
        yield done if block_given?
        break if done >= count
        raise "sidekiq stopped" unless alive?
        raise "#{done}/#{count} jobs done after #{max_seconds} s" if monotonic - started > max_seconds

        sleep 0.1
      end
      { seconds: redis("LRANGE", DURATIONS, 0, -1).map(&:to_f), wall: monotonic - started }
    end

    # How many jobs have recorded their time since the last run_jobs.
    def jobs_done
      redis("LLEN", DURATIONS).to_i
    end

    # One small job, as a quiet worker still gets now and then.
    def tick
      push_bulk("class" => "StringsJob", "args" => [[20, rand(1 << 30), false]])
    end

    # What BloatProbe reads inside the worker, asked of it by a job.
    def stats
      push_bulk("class" => "ProbeJob", "args" => [[]])
      _key, json = redis("BLPOP", STATS, 30)
      raise "sidekiq did not answer the probe job within 30 s" unless json

      StatsDocument.parse(json)
    end

    def redis_pid
      @redis&.pid
    end

    def stop
      super
      @redis&.stop
    end

    private

    def redis(*command)
      @pool.with { |connection| connection.call(*command) }
    end

    # Sidekiq::Client.via is how Sidekiq 6.4 and 7 alike push to a given pool.
    def push_bulk(job)
      Sidekiq::Client.via(@pool) { Sidekiq::Client.push_bulk(job) }
    end
  end
end
