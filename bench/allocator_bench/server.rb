# frozen_string_literal: true

require "net/http"
require "socket"
require "json"

module AllocatorBench
  # rails-app under Puma (production, one process) on a free loopback port.
  class Server
    APP_DIR = File.expand_path("../../rails-app", __dir__)
    BOOT_TIMEOUT = 90
    REQUEST_BUDGET = 512 << 20
    # Both read config/puma.rb: the documented `rails server`, and Puma's own command line.
    COMMANDS = {
      rails_server: %w[bundle exec rails server],
      puma: %w[bundle exec puma -C config/puma.rb]
    }.freeze

    class BootError < StandardError; end

    @running = []
    class << self
      attr_reader :running

      # Stops every server still running; called on exit, error or Ctrl-C.
      def stop_all
        running.dup.each(&:stop)
      end

      # Port 0 makes the kernel pick a port no other process listens on.
      def free_port
        server = TCPServer.new("127.0.0.1", 0)
        server.addr[1]
      ensure
        server&.close
      end
    end

    attr_reader :pid, :port

    def initialize(config, threads:, log_path:, command: :puma)
      @config = config
      @threads = threads
      @log_path = log_path
      @command = COMMANDS.fetch(command)
    end

    def start
      @port = self.class.free_port
      env = {
        "RAILS_ENV" => "production", "PORT" => @port.to_s, "BINDING" => "127.0.0.1",
        "RAILS_MAX_THREADS" => @threads.to_s, "BLOAT_PROBE_WORKLOAD" => "1", "BLOAT_PROBE_DASHBOARD" => "1",
        "RAILS_LOG_LEVEL" => "warn", "MALLOC_ARENA_MAX" => nil, "LD_PRELOAD" => nil,
        "BLOAT_PROBE_TRIM_INTERVAL" => nil,
        # The bench measures allocators, not refusals: every thread may hold a whole
        # request's budget (the mix's heavy request needs up to 438 MiB).
        "BLOAT_PROBE_WORKLOAD_REQUEST_BUDGET" => REQUEST_BUDGET.to_s,
        "BLOAT_PROBE_WORKLOAD_BUDGET" => (REQUEST_BUDGET * @threads).to_s,
        # `rails server` writes one; servers side by side must not share it.
        "PIDFILE" => File.join(File.dirname(@log_path), "server-#{@port}.pid")
      }.merge(@config.server_env)
      # bundle exec (and the rails command) replace themselves, so this pid is the server's.
      @pid = Process.spawn(env, *@command, chdir: APP_DIR, out: @log_path, err: %i[child out], pgroup: true)
      self.class.running << self
      wait_until_healthy
      self
    end

    def get(path)
      Net::HTTP.start("127.0.0.1", @port, open_timeout: 2, read_timeout: 30) { |http| http.get(path) }
    end

    def stats
      JSON.parse(get("/bloat/stats").body)
    end

    def rss
      File.foreach("/proc/#{@pid}/status") { |line| return line.split[1].to_i * 1024 if line.start_with?("VmRSS:") }
      nil
    rescue Errno::ENOENT, Errno::ESRCH
      nil
    end

    def stop
      return unless @pid

      signal_group("TERM")
      deadline = monotonic + 10
      sleep 0.1 while monotonic < deadline && alive?
      signal_group("KILL") if alive?
      reap
      self.class.running.delete(self)
      @pid = nil
    end

    def alive?
      Process.waitpid(@pid, Process::WNOHANG).nil?
    rescue Errno::ECHILD
      false
    end

    # The last lines of the log without backtrace frames, so the error message shows.
    def log_tail(lines = 12)
      File.readlines(@log_path).reject { |line| line.lstrip.start_with?("from ") }.last(lines).join
    rescue Errno::ENOENT
      ""
    end

    private

    def wait_until_healthy
      deadline = monotonic + BOOT_TIMEOUT
      loop do
        raise BootError, "the server exited while booting" unless alive?
        return if healthy?
        raise BootError, "no answer on port #{@port} within #{BOOT_TIMEOUT} s" if monotonic > deadline

        sleep 0.25
      end
    rescue BootError
      stop
      raise
    end

    def healthy?
      get("/bloat/stats").is_a?(Net::HTTPSuccess)
    rescue SystemCallError, IOError, Net::OpenTimeout, Net::ReadTimeout
      false
    end

    def signal_group(signal)
      Process.kill(signal, -@pid)
    rescue Errno::ESRCH, Errno::EPERM
      nil
    end

    def reap
      Process.wait(@pid)
    rescue Errno::ECHILD
      nil
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
