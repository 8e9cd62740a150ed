# frozen_string_literal: true

require "bloat_probe"
require "json"
require "open3"

module AllocatorBench
  # The request mix: which routes, in what proportion. MIX="posts:1,strings:2,churn:2".
  class Mix
    # posts: the seed's page, 50 posts rendered from the in-process cache.
    # strings: 500 Ruby strings of 24 B to 32 KiB, 1% kept in a bounded cache.
    # churn: a heavy request (think CSV export): 8000 native blocks of 8 to 56 KiB, about
    #   200 MB, alive until the request ends; 0.2% kept for the next 50 such requests.
    # index: what the seed's `ab` asks for, /posts (page 1) every time.
    ROUTES = {
      "index" => ->(_i) { "/posts" },
      "posts" => ->(i) { "/posts?page=#{i % 20 + 1}" },
      "strings" => ->(i) { "/workload/strings?count=500&seed=#{i}" },
      "churn" => ->(i) { "/workload/churn?count=8000&min_size=8192&max_size=57344&retain=0.002&seed=#{i}" }
    }.freeze

    # A route's share of the mix.
    WEIGHTS = 1..1_000

    def initialize(spec)
      @weights = spec.split(",").reject { |part| part.strip.empty? }.to_h do |part|
        name, weight = part.strip.split(":", 2)
        unless ROUTES.key?(name)
          raise ArgumentError,
                "unknown route #{name.inspect} in MIX; known: #{ROUTES.keys.join(", ")}"
        end

        [name, BloatProbe::Setting.whole_number("MIX weight for #{name}", weight || "1", range: WEIGHTS)]
      end
      return unless @weights.empty?

      raise ArgumentError,
            "MIX names no route, got #{spec.inspect}; known: #{ROUTES.keys.join(", ")}"
    end

    # 20 rounds of the weighted routes, interleaved, for wrk to cycle through.
    def paths
      (0...20).flat_map do |round|
        @weights.flat_map do |name, weight|
          Array.new(weight) do |k|
            ROUTES[name].call(round * weight + k)
          end
        end
      end
    end

    def to_s
      @weights.map { |name, weight| "#{name}:#{weight}" }.join(",")
    end
  end

  # Drives wrk (keep-alive, CONCURRENCY connections) for a fixed number of requests.
  class Load
    SCRIPT = File.expand_path("../load.lua", __dir__)
    WRK_THREADS = 2

    def initialize(requests:, concurrency:, mix:, max_seconds:)
      @requests = requests
      @concurrency = concurrency
      @mix = mix
      @max_seconds = max_seconds
    end

    # Yields the count of answered requests as it grows.
    def run(port)
      # wrk needs a connection per thread, and a thread whose share is no request would
      # never report done.
      threads = [WRK_THREADS, @concurrency, @requests].min
      env = { "BENCH_PATHS" => @mix.paths.join(" "), "BENCH_REQUESTS" => @requests.to_s,
              "BENCH_THREADS" => threads.to_s }
      command = ["wrk", "-t#{threads}", "-c#{@concurrency}", "-d#{@max_seconds}s", "--timeout", "30s",
                 "-s", SCRIPT, "http://127.0.0.1:#{port}/"]
      out = +""
      status = Open3.popen2e(env, *command) do |_stdin, output, waiter|
        answered = 0
        finished_threads = 0
        output.each_line do |line|
          out << line
          if line.start_with?("PROGRESS ")
            answered += line.split[1].to_i
            yield answered if block_given?
          elsif line.start_with?("THREAD_DONE")
            finished_threads += 1
            Process.kill("INT", waiter.pid) if finished_threads == threads
          end
        end
        waiter.value
      rescue StandardError, Interrupt # wrk must not outlive the bench
        Process.kill("KILL", waiter.pid) if waiter.alive?
        raise
      end
      line = out.lines.find { |l| l.start_with?("BENCH_RESULT ") }
      raise "wrk failed (#{status}): #{out}" unless line

      result = JSON.parse(line.delete_prefix("BENCH_RESULT "), symbolize_names: true)
      errors = %i[errors_connect errors_read errors_write errors_status errors_timeout].sum { |k| result[k] }
      result.merge(errors: errors, rps: result[:requests] / (result[:duration_us] / 1e6))
    end
  end

  # Reads the server's RSS from /proc every `interval` seconds on a thread of its own (the
  # gem's Periodic, as its Reporter and Trimmer run).
  class Sampler
    include BloatProbe::Periodic

    attr_reader :samples

    def initialize(server, interval:, started_at:)
      @server = server
      @interval = interval
      @started_at = started_at
      @samples = []
      @phase = "boot"
      @lock = Mutex.new
    end

    def phase=(name)
      @lock.synchronize { @phase = name }
    end

    def tick
      rss = @server.rss or return
      @lock.synchronize { @samples << { t: (now - @started_at).round(3), rss: rss, phase: @phase } }
    end

    def peak
      @lock.synchronize { @samples.map { |s| s[:rss] }.max }
    end

    private

    def thread_name = "bench-sampler"

    def work_first? = true

    def now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
