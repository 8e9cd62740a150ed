# frozen_string_literal: true

require "test_helper"

# Call durations in Prometheus's buckets: the quantiles they give against the exact ones of
# the same durations, sorted, and the count and sum against what was added.
class DurationsTest < Minitest::Test
  def test_quantiles_fall_within_the_bucket_of_the_exact_ones
    random = Random.new(7)
    seconds = Array.new(5000) { 10**random.rand(-3.0..0.7) } # 1 ms to 5 s, log-uniform
    bounds = BloatProbe::Durations::BOUNDS
    counts = bounds.each_with_index.map do |bound, i|
      seconds.count { |value| value <= bound && (i.zero? || value > bounds[i - 1]) }
    end
    durations = BloatProbe::Durations.new(counts, seconds.sum)
    sorted = seconds.sort
    [0.5, 0.9, 0.99].each do |fraction|
      exact = sorted[(fraction * sorted.size).ceil - 1]
      upper = bounds.find { |bound| exact <= bound }
      lower = bounds.reverse.find { |bound| bound < exact } || 0.0
      estimate = BloatProbe::Durations.quantile(durations.cumulative, fraction)
      assert_operator estimate, :>=, lower, "p#{fraction * 100}: #{estimate} against #{exact}"
      assert_operator estimate, :<=, upper, "p#{fraction * 100}: #{estimate} against #{exact}"
    end
    assert_equal 5000, durations.count
    assert_nil BloatProbe::Durations.quantile(BloatProbe::Durations.new.cumulative, 0.5)
  end

  def test_the_middleware_counts_every_request_with_its_time
    attribution = BloatProbe::Attribution.new
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    3.times { attribution.measure("slow") { sleep 0.03 } }
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    durations = attribution.durations
    assert_equal 3, durations.count
    assert_operator durations.sum, :>=, 0.09
    assert_operator durations.sum, :<=, elapsed
    # Each slept 30 ms at least: none in the buckets up to 25 ms.
    assert_equal [[0.025, 0], [Float::INFINITY, 3]], durations.cumulative.values_at(2, -1)
  end
end
