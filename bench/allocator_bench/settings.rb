# frozen_string_literal: true

require "bloat_probe/setting"
require_relative "configuration"
require_relative "workloads"

module AllocatorBench
  # rake bench's settings, from the environment (see docs/bench.md), parsed as every
  # setting is (BloatProbe::Setting): a bad one stops the bench, naming it.
  Settings = Struct.new(:workload, :preset, :configs, :requests, :jobs, :concurrency, :mix, :idle, :repeat, :threads,
                        :workers, :sample_interval, :results_dir, :plot, keyword_init: true)

  class Settings
    # Settings a preset gives unless the environment sets them. seed: Bloaty McBloatface's
    # own load, `ab -k -c 25 -n 1000 /posts`, for the three configurations it compared:
    # plain page views, no workload routes.
    PRESETS = {
      "seed" => { "CONFIGS" => "glibc,arena2,jemalloc", "REQUESTS" => "1000", "CONCURRENCY" => "25",
                  "MIX" => "index:1" }
    }.freeze

    # Counts and seconds are whole numbers from 1 up to this.
    COUNTS = 1..1_000_000_000
    # Puma's threads in all: 25, Sidekiq's old default concurrency.
    THREADS = 25
    # 0: Puma in single mode; N: a master and N workers (WEB_CONCURRENCY), as rails-app allows.
    WORKERS = 0..64

    def self.from_env(env = ENV)
      setting = BloatProbe::Setting
      workload = setting.choice("WORKLOAD", Workloads::ALL.keys, default: "web", env: env)
      preset = setting.choice("PRESET", PRESETS.keys, default: nil, env: env)
      if preset && workload != "web"
        raise ArgumentError, "PRESET=#{preset} is a web load; it does not go with WORKLOAD=#{workload}"
      end

      env = PRESETS[preset].merge(env.to_h.reject { |_name, value| value.to_s.strip.empty? }) if preset
      workers = BloatProbe::Setting.integer("WORKERS", range: WORKERS, default: 0, env: env)
      raise ArgumentError, "WORKERS=#{workers} is Puma's cluster mode; WORKLOAD=#{workload} has none" if
        workers.positive? && workload != "web"

      new(
        workload: workload,
        preset: preset,
        configs: Configuration.select(env["CONFIGS"], cluster: workers.positive?),
        requests: positive(env, "REQUESTS", 2500),
        jobs: positive(env, "JOBS", 8000),
        concurrency: positive(env, "CONCURRENCY", 25),
        # Most requests are ordinary; one in 40 is heavy. Each Puma thread that serves a
        # heavy one leaves its arena at that high-water mark (see README).
        mix: Mix.new(env["MIX"].to_s.strip.empty? ? "posts:10,strings:29,churn:1" : env["MIX"]),
        idle: positive(env, "IDLE", 15),
        repeat: positive(env, "REPEAT", 1),
        # In cluster mode, threads per worker, so that all workers together have about as
        # many as the one process has (12 each for 2 workers, 8 for 3).
        threads: positive(env, "THREADS", [THREADS / [workers, 1].max, 1].max),
        workers: workers,
        sample_interval: 0.2,
        results_dir: File.expand_path(env.fetch("RESULTS_DIR", "bench/results"), Dir.pwd),
        plot: plot(env)
      )
    end

    # PLOT=1 draws the terminal plot even into a pipe, PLOT=0 never; unset, on a terminal.
    def self.plot(env)
      BloatProbe::Setting.boolean("PLOT", default: $stdout.tty?, env: env)
    end

    def self.positive(env, name, default)
      BloatProbe::Setting.integer(name, range: COUNTS, default: default, env: env)
    end

    def to_h
      super.merge(configs: configs.map(&:name), mix: mix.to_s)
    end
  end
end
