# frozen_string_literal: true

require "bloat_probe"
require "net/http"
require "json"
require_relative "child_process"
require_relative "cluster_memory"
require_relative "../../rails-app/lib/stats_document"

module AllocatorBench
  # rails-app under Puma (production) on a free loopback port: one process, or a master
  # and `workers` workers (Puma's cluster mode), whose memory is then what the container
  # is charged for them all: the sum of their PSS.
  class Server
    APP_DIR = File.expand_path("../../rails-app", __dir__)
    BOOT_TIMEOUT = 90
    REQUEST_BUDGET = 512 << 20
    # Both read config/puma.rb: the documented `rails server`, and Puma's own command line.
    COMMANDS = {
      rails_server: %w[bundle exec rails server],
      puma: %w[bundle exec puma -C config/puma.rb]
    }.freeze

    include ChildProcess

    attr_reader :port

    def initialize(config, threads:, log_path:, workers: 0, command: :puma)
      @config = config
      @threads = threads
      @workers = workers
      @log_path = log_path
      @command = COMMANDS.fetch(command)
    end

    def start
      @port = ChildProcess.free_port
      env = {
        "RAILS_ENV" => "production", "PORT" => @port.to_s, "BINDING" => "127.0.0.1",
        "RAILS_MAX_THREADS" => @threads.to_s, "WEB_CONCURRENCY" => @workers.to_s,
        "BLOAT_PROBE_WORKLOAD" => "1", "BLOAT_PROBE_DASHBOARD" => "1",
        "RAILS_LOG_LEVEL" => "warn", "MALLOC_ARENA_MAX" => nil, "LD_PRELOAD" => nil,
        "BLOAT_PROBE_TRIM_INTERVAL" => nil, "BLOAT_PROBE_TRIM_MIN" => nil,
        # The bench measures allocators, not refusals: every thread may hold a whole
        # request's budget (the mix's heavy request needs up to 438 MiB).
        "BLOAT_PROBE_WORKLOAD_REQUEST_BUDGET" => REQUEST_BUDGET.to_s,
        "BLOAT_PROBE_WORKLOAD_BUDGET" => (REQUEST_BUDGET * @threads).to_s,
        # `rails server` writes one; servers side by side must not share it.
        "PIDFILE" => File.join(File.dirname(@log_path), "server-#{@port}.pid")
      }.merge(@config.server_env)
      # bundle exec (and the rails command) replace themselves, so this pid is the server's.
      spawn_child(env, @command, chdir: APP_DIR)
      wait_until(BOOT_TIMEOUT, "the server") { healthy? && (!cluster? || cluster_memory&.workers&.size == @workers) }
      self
    end

    def cluster?
      @workers.positive?
    end

    # In cluster mode, the master's and its workers' memory; nil in single mode.
    def cluster_memory
      ClusterMemory.read(@pid) if cluster?
    rescue SystemCallError, BloatProbe::Error
      nil
    end

    # What the server costs: its RSS, or in cluster mode the sum of its processes' PSS.
    def rss
      cluster? ? cluster_memory&.pss_sum : super
    end

    def get(path)
      Net::HTTP.start("127.0.0.1", @port, open_timeout: 2, read_timeout: 30) { |http| http.get(path) }
    end

    def stats
      StatsDocument.parse(get("/bloat/stats").body)
    end

    private

    def healthy?
      get("/bloat/stats").is_a?(Net::HTTPSuccess)
    rescue SystemCallError, IOError, Net::OpenTimeout, Net::ReadTimeout
      false
    end
  end
end
