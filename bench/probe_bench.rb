# frozen_string_literal: true

# rake bench:probe: what BloatProbe's readings cost, measured side by side in one run.
require "bloat_probe"
require "get_process_mem"

module ProbeBench
  module_function

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # Median seconds per call over `rounds` batches of `batch` calls.
  def median_cost(rounds: 21, batch: 200)
    times = Array.new(rounds) do
      started = monotonic
      batch.times { yield }
      (monotonic - started) / batch
    end
    times.sort[rounds / 2]
  end

  # 16 threads that allocate, keep a sparse set and stay alive: 16 fragmented arenas.
  def fragment_arenas(threads: 16)
    ready = Queue.new
    hold = Queue.new
    workers = Array.new(threads) do |i|
      Thread.new do
        kept = BloatProbe.churn(count: 20_000, retain: 0.2, seed: i)
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
    hold.close
    workers.each(&:join)

    # Interleaved, so that a noisy moment on this shared machine hits both sides alike.
    rates = Array.new(5) { [churn_rate(1), churn_rate(2)] }
    one, two = rates.transpose.map { |runs| runs.sort[runs.size / 2] }
    puts "", format("%-34s %12s", "churn (median of 5)", "allocs/s")
    puts format("%-34s %12.0f", "1 native thread", one)
    puts format("%-34s %12.0f   (%.2f× one thread)", "2 native threads", two, two / one)
    puts "", "Targets: memory ≤ 0.1× GetProcessMem; arena_stats ≤ 1000 µs with 16 fragmented arenas; 2 threads ≥ 1.6× 1."
  end
end

require "etc"
ProbeBench.main
