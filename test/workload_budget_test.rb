# frozen_string_literal: true

require "test_helper"
require "net/http"
require_relative "../bench/allocator_bench/configuration"
require_relative "../bench/allocator_bench/server"

# rails-app's workload routes under Puma with their default budgets (512 MiB a request,
# 2 GiB of RSS growth), hit by 25 clients with the largest parameters each route accepts:
# the process's RSS stays within the budget plus its baseline, and every refusal is a
# 503, never a 500.
class WorkloadBudgetTest < Minitest::Test
  MiB = RubyChild::MiB
  CLIENTS = 25
  REQUESTS = 500
  BUDGETS = 2 << 30
  LARGEST = {
    "strings" => "/workload/strings?count=512&min_size=1048576&max_size=1048576&keep=0.01",
    "churn" => "/workload/churn?count=500&min_size=1048576&max_size=1048576&retain=0.01"
  }.freeze

  def setup
    defaults = { "BLOAT_PROBE_WORKLOAD_REQUEST_BUDGET" => nil, "BLOAT_PROBE_WORKLOAD_BUDGET" => nil }
    config = AllocatorBench::Configuration.new(name: "defaults", env: defaults, summary: "the app's own budgets")
    @server = AllocatorBench::Server.new(config, threads: 25,
                                                 log_path: scratch_log("bloat_probe-budget")).start
  end

  def teardown
    @server&.stop
  end

  # A process at its budget stays there (glibc keeps the freed pages), so each route gets
  # a fresh server.
  def test_the_largest_accepted_strings_requests_stay_within_the_budget
    assert_within_budget(LARGEST.fetch("strings"))
  end

  def test_the_largest_accepted_churn_requests_stay_within_the_budget
    assert_within_budget(LARGEST.fetch("churn"))
  end

  private

  def assert_within_budget(path)
    baseline = @server.rss
    peak = baseline
    sampler = Thread.new do
      loop do
        peak = [peak, @server.rss.to_i].max
        sleep 0.02
      end
    end
    counts = hammer(path)
    sampler.kill.join
    assert_equal REQUESTS, counts.values.sum
    assert_equal [], counts.keys - %w[200 503], counts.inspect
    assert_operator counts["200"].to_i, :>, 0, counts.inspect
    figures = format("peak RSS %d MiB, baseline %d MiB, budgets %d MiB", peak / MiB, baseline / MiB, BUDGETS / MiB)
    assert_operator peak, :<, baseline + BUDGETS, figures
    puts format("\n%s: baseline %d MiB, peak %d MiB (budgets %d MiB); %s", path, baseline / MiB, peak / MiB,
                BUDGETS / MiB, counts)
  end

  # CLIENTS keep-alive clients share REQUESTS requests; returns the count of each status.
  def hammer(path)
    queue = Queue.new
    REQUESTS.times { queue << path }
    queue.close
    CLIENTS.times.map do
      Thread.new do
        Net::HTTP.start("127.0.0.1", @server.port, read_timeout: 120) do |http|
          codes = []
          while (next_path = queue.pop)
            codes << http.get(next_path).code
          end
          codes
        end
      end
    end.flat_map(&:value).tally
  end
end
