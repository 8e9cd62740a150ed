# frozen_string_literal: true

# rake bench:probe: what BloatProbe's readings cost, measured side by side in one run:
# the readings, a metrics scrape, the Reporter's CPU time, and whether mounting the
# metrics app changes rails-app's other requests. PROBE_SECONDS (default 60) is how long
# the CPU time is measured with and without the Reporter.
require "bloat_probe"
require "get_process_mem"
require_relative "allocator_bench/configuration"
require_relative "allocator_bench/server"
require_relative "allocator_bench/load"
require "net/http"
require "open3"
require "json"

module ProbeBench
  module_function

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # Median seconds per call over `rounds` batches of `batch` calls.
  def median_cost(rounds: 21, batch: 200, &block)
    times = Array.new(rounds) do
      started = monotonic
      batch.times(&block)
      (monotonic - started) / batch
    end
    times.sort[rounds / 2]
  end

  # 16 threads that each allocate about 68 MB of 8–32 KiB blocks, all alive at once, keep
  # one in ten and stay alive: 16 fragmented arenas holding about 1 GiB free between the
  # blocks they keep.
  def fragment_arenas(threads: 16)
    ready = Queue.new
    hold = Queue.new
    workers = Array.new(threads) do |i|
      Thread.new do
        kept = BloatProbe.churn(count: 4_000, window: 4_000, min_size: 8 << 10, max_size: 32 << 10, retain: 0.1,
                                seed: i)
        ready << 1
        hold.pop
        kept.release
      end
    end
    threads.times { ready.pop }
    [workers, hold]
  end

  def churn_rate(threads)
    result = BloatProbe.churn(count: 2_000_000 / threads, threads: threads, window: 256, seed: 3)
    result.allocations / result.elapsed
  end

  def main
    workers, hold = fragment_arenas
    stats = BloatProbe.arena_stats
    puts "#{Etc.nprocessors} cores, #{BloatProbe.allocator}, #{stats.arena_count} arenas " \
         "(#{BloatProbe::Format.bytes(stats.free)} free in them), #{RUBY_DESCRIPTION}"
    costs = {
      "GetProcessMem.new.bytes" => median_cost { GetProcessMem.new.bytes },
      "BloatProbe.memory" => median_cost { BloatProbe.memory },
      "BloatProbe.memory(detail: true)" => median_cost(batch: 50) { BloatProbe.memory(detail: true) },
      "BloatProbe.mallinfo" => median_cost { BloatProbe.mallinfo },
      "BloatProbe.arena_stats" => median_cost(batch: 20) { BloatProbe.arena_stats }
    }
    base = costs["GetProcessMem.new.bytes"]
    puts "", format("%-34s %12s %16s", "reading", "median µs", "× GetProcessMem")
    costs.each { |name, cost| puts format("%-34s %12.2f %16.3f", name, cost * 1e6, cost / base) }
    moment_costs
    scrape_costs
    middleware_cost
    reporter_cpu
    outside_cost
    hold.close
    workers.each(&:join)
    trim_cost
    busy_scrapes
    side_by_side("metrics mounted", { "BLOAT_PROBE_METRICS" => "1" }, { "BLOAT_PROBE_METRICS" => "0" })
    side_by_side("attribution middleware", { "BLOAT_PROBE_ATTRIBUTION" => "1" }, { "BLOAT_PROBE_ATTRIBUTION" => "0" })
    side_by_side("malloc_trim(0) every second", { "BLOAT_PROBE_TRIM_INTERVAL" => "1" }, {})
    outside_beside_the_app

    # Interleaved, so that a noisy moment on this shared machine hits both sides alike.
    rates = Array.new(5) { [churn_rate(1), churn_rate(2)] }
    one, two = rates.transpose.map { |runs| runs.sort[runs.size / 2] }
    puts "", format("%-34s %12s", "churn (median of 5)", "allocs/s")
    puts format("%-34s %12.0f", "1 native thread", one)
    puts format("%-34s %12.0f   (%.2f× one thread)", "2 native threads", two, two / one)
    puts "", "Targets: memory ≤ 0.1× GetProcessMem; arena_stats ≤ 1000 µs with 16 fragmented arenas; " \
             "a moment ≤ 5 ms with them; 2 threads ≥ 1.6× 1;",
         "scrape ≤ 2 ms and ≤ 1.5× arena_stats; Reporter at 1 s ≤ 0.5% of a core; mounted metrics ≈ 1.00× req/s;",
         "attribution ≤ 20 µs a request, /posts with it ≥ 0.98× without; a scrape of the metrics port while " \
         "every request thread is busy ≤ 50 ms; the trim's time per GiB and /posts' p99 with trims: figures, " \
         "no target;",
         "bloat-probe PID ≤ 50 ms with the 16 arenas; the web mix with it every second ≥ 0.98× req/s, p99 within noise."
  end

  # What the Reporter, a scrape past the diagnosis interval, the guard and the dashboard
  # take: one moment. Beside it, what a moment read until 2026-12-04 (malloc_info, smaps
  # and smaps_rollup walked each time, the cgroup), and its parts: the walks it now avoids
  # (smaps always; smaps_rollup while RSS holds) are where the time went.
  def moment_costs
    recorder = BloatProbe::Recorder.new
    recorder.take(record: false) # the first walk, which the next moments reuse while RSS holds
    pairs = Array.new(9) do
      [median_cost(rounds: 5, batch: 5) { recorder.take(record: false) },
       median_cost(rounds: 5, batch: 5) do
         BloatProbe::Native.arena_stats
         BloatProbe::Native.memory(true)
         File.read("/proc/self/smaps")
         BloatProbe::Native.cgroup
       end]
    end
    now, before = pairs.transpose.map { |runs| runs.sort[runs.size / 2] }
    parts = {
      "malloc_info (Native.arena_stats)" => median_cost(rounds: 9, batch: 5) { BloatProbe::Native.arena_stats },
      "smaps_rollup walk (memory(detail:))" => median_cost(rounds: 9, batch: 5) { BloatProbe.memory(detail: true) },
      "smaps (read until 2026-12-04)" => median_cost(rounds: 9, batch: 5) { File.read("/proc/self/smaps") }
    }
    puts "", format("%-34s %12s %16s", "moment (median of 9)", "median ms", "× before")
    puts format("%-34s %12.2f %16.3f", "the readings of a moment before", before * 1e3, 1.0)
    puts format("%-34s %12.2f %16.3f", "Recorder#take now", now * 1e3, now / before)
    parts.each { |name, cost| puts format("  %-32s %12.2f %16.3f", name, cost * 1e3, cost / before) }
    arenas = BloatProbe.arena_stats.arena_count
    puts format("arena locks per moment: %d (malloc_info takes each arena's lock once while it walks its bins; " \
                "%.2f ms inside it in all)", arenas, parts.values.first * 1e3)
  end

  # A scrape reads RSS and malloc_info afresh and reuses the Recorder's diagnosis (taken
  # again once a minute): measured against arena_stats alone, interleaved.
  def scrape_costs
    metrics = BloatProbe::Metrics.new
    env = { "REQUEST_METHOD" => "GET" }
    BloatProbe.probe.recorder.diagnosis
    pairs = Array.new(9) do
      [median_cost(rounds: 5, batch: 20) { BloatProbe.arena_stats },
       median_cost(rounds: 5, batch: 20) { metrics.call(env) }]
    end
    stats, scrape = pairs.transpose.map { |runs| runs.sort[runs.size / 2] }
    diagnose = median_cost(rounds: 5, batch: 5) { BloatProbe.diagnose }
    size = metrics.call(env)[2].join.bytesize
    puts "", format("%-34s %12s %16s", "scrape (median of 9)", "median µs", "× arena_stats")
    puts format("%-34s %12.2f %16.3f", "BloatProbe.arena_stats", stats * 1e6, 1.0)
    puts format("%-34s %12.2f %16.3f   (%d bytes of text)", "Metrics#call (one scrape)", scrape * 1e6, scrape / stats,
                size)
    puts format("%-34s %12.2f %16.3f   (once per diagnosis interval)", "BloatProbe.diagnose", diagnose * 1e6,
                diagnose / stats)
  end

  # What the attribution middleware adds to one request: a measured empty call, on a
  # thread of its own arena (as a Puma thread is), against the empty call alone.
  def middleware_cost
    attribution = BloatProbe::Attribution.new
    cost, bare = Thread.new do
      BloatProbe.thread_arena # this thread's arena, checked once
      [median_cost { attribution.measure("posts#index") { nil } }, median_cost { nil }]
    end.value
    puts "", format("%-34s %12s", "attribution middleware", "median µs")
    puts format("%-34s %12.2f", "one request measured, empty", (cost - bare) * 1e6)
  end

  # The process's CPU time over PROBE_SECONDS with a Reporter ticking every second, then
  # as long without it, with the 16 fragmented arenas alive throughout.
  def reporter_cpu
    seconds = Float(ENV.fetch("PROBE_SECONDS", "60"))
    cpu = -> { Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) }
    lines = 0
    BloatProbe.probe = BloatProbe::Probe.new
    reporter = BloatProbe::Reporter.new(interval: 1, log: ->(_line) { lines += 1 })
    measure = lambda do |running|
      reporter.start if running
      started = cpu.call
      sleep seconds
      used = cpu.call - started
      reporter.stop if running
      used
    end
    with = measure.call(true)
    without = measure.call(false)
    share = (with - without) / seconds * 100
    puts "", format("%-34s %12s", "Reporter, interval 1 s", "CPU ms")
    puts format("%-34s %12.1f   (%d log lines)", "#{seconds.round} s with the Reporter", with * 1000, lines)
    puts format("%-34s %12.1f", "#{seconds.round} s without", without * 1000)
    puts format("%-34s %11.3f%%", "the Reporter's share of one core", share)
  end

  # A scrape while 25 heavy requests keep all 25 Puma threads busy: of the route mounted
  # in the app (which queues behind them) and of the plugin's own port, interleaved.
  def busy_scrapes
    port = AllocatorBench::ChildProcess.free_port
    config = AllocatorBench::Configuration.new(
      name: "busy", summary: "metrics mounted and on a port",
      env: { "BLOAT_PROBE_METRICS" => "1", "BLOAT_PROBE_METRICS_PORT" => port.to_s }
    )
    Dir.mktmpdir("bloat_probe-probe-bench") do |dir|
      server = AllocatorBench::Server.new(config, threads: 25, log_path: File.join(dir, "busy.log")).start
      deadline = monotonic + 20
      heavy = "/workload/strings?count=15000&min_size=32768&max_size=32768&keep=0"
      load = Array.new(25) { Thread.new { server.get(heavy) while monotonic < deadline } }
      sleep 2
      timed = ->(&request) { (started = monotonic) && request.call && monotonic - started }
      pairs = Array.new(7) do
        [timed.call { server.get("/bloat/metrics") },
         timed.call { Net::HTTP.start("127.0.0.1", port) { |http| http.get("/metrics") } }]
      end
      load.each(&:join)
      mounted, own = pairs.transpose.map { |times| times.sort[times.size / 2] }
      puts "", format("%-34s %12s", "scrape, 25 busy threads (median 7)", "ms")
      puts format("%-34s %12.1f", "mounted route /bloat/metrics", mounted * 1000)
      puts format("%-34s %12.1f", "BLOAT_PROBE_METRICS_PORT", own * 1000)
    ensure
      server&.stop
    end
  end

  # How long one malloc_trim(0) holds the arenas, per GiB it gives back: the 16 arenas whose
  # churn has just been released.
  def trim_cost
    result = BloatProbe.trim
    released = result.rss_before - result.rss_after
    puts "", format("%-34s %12s", "malloc_trim(0), 16 arenas", "ms per GiB")
    puts format("%-34s %12.1f   (%.1f ms, %s released)", "one trim", result.elapsed * 1000 / (released / 2.0**30),
                result.elapsed * 1000, BloatProbe::Format.bytes(released))
  end

  # rails-app's /posts under wrk with the server's environment `with` and `without`, 3
  # rounds interleaved: the medians of req/s and of p99. `during`, if given, runs beside
  # the "on" side's load with the server's pid, until the load ends.
  def side_by_side(label, with, without, mix: "posts:1", requests: 3000, during: nil)
    runs = { "on" => [], "off" => [] }
    Dir.mktmpdir("bloat_probe-probe-bench") do |dir|
      3.times do |round|
        runs.each do |state, results|
          config = AllocatorBench::Configuration.new(name: state, summary: label, env: state == "on" ? with : without)
          server = AllocatorBench::Server.new(config, threads: 5,
                                                      log_path: File.join(dir, "#{round}-#{state}.log")).start
          load = AllocatorBench::Load.new(requests: requests, concurrency: 10, mix: AllocatorBench::Mix.new(mix),
                                          max_seconds: 120)
          done = false
          beside = (Thread.new { during.call(server.pid) { done } } if during && state == "on")
          results << load.run(server.port)
          done = true
          beside&.join
        ensure
          server&.stop
        end
      end
    end
    median = ->(results, key) { results.map { _1[key] }.sort[results.size / 2] }
    (on_rps, off_rps), (on_p99, off_p99) = %i[rps p99_us].map { |key| runs.values.map { median.call(_1, key) } }
    puts "", format("%-34s %12s %10s", "rails-app #{mix} (median of 3)", "req/s", "p99 ms")
    puts format("%-34s %12.0f %10.1f   (%s; %.2f× the req/s without)", label, on_rps, on_p99 / 1000.0,
                settings(with), on_rps / off_rps)
    puts format("%-34s %12.0f %10.1f   (%s)", "without", off_rps, off_p99 / 1000.0, settings(without))
  end

  OUTSIDE_COMMAND = File.expand_path("../target/release/bloat-probe", __dir__)

  # bloat-probe PID against this process's 16 fragmented arenas, median of 9 runs: the
  # command's own reading time (its read_seconds), and from spawn to exit, which adds the
  # fork of this 1 GiB process.
  def outside_cost
    runs = Array.new(9) do
      started = monotonic
      out, status = Open3.capture2(OUTSIDE_COMMAND, Process.pid.to_s, "--json")
      raise "bloat-probe #{Process.pid} failed: #{status}" unless status.success?

      [JSON.parse(out).fetch("read_seconds"), monotonic - started]
    end
    reading, whole = runs.transpose.map { |times| times.sort[4] }
    puts "", format("%-34s %12s", "bloat-probe PID (median of 9)", "ms")
    puts format("%-34s %12.1f   (16 arenas, %s free in them)", "its reading of this process",
                reading * 1000, BloatProbe::Format.bytes(BloatProbe.arena_stats.free))
    puts format("%-34s %12.1f", "spawned from here, start to exit", whole * 1000)
  end

  # What reading rails-app from outside every second costs it, under the web mix.
  def outside_beside_the_app
    every_second = lambda do |pid, &done|
      until done.call
        Open3.capture2(OUTSIDE_COMMAND, pid.to_s, "--json")
        sleep 1
      end
    end
    side_by_side("bloat-probe PID every 1 s", {}, {},
                 mix: "posts:10,strings:29,churn:1", requests: 1200, during: every_second)
  end

  def settings(env)
    env.empty? ? "the defaults" : env.map { |name, value| "#{name}=#{value}" }.join(" ")
  end
end

require "etc"
require "tmpdir"
ProbeBench.main if $PROGRAM_NAME == __FILE__
