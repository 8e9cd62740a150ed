# frozen_string_literal: true

require "test_helper"
require "net/http"

# Steady or growing, in rails-app under Puma with `plugin :bloat_probe` and a short
# warm-up: page views that go on past the warm-up are a steady working set (neither
# live_native nor a growth verdict); a route that keeps 1 MiB per call is native_growth,
# at the rate it was kept.
class GrowthTest < Minitest::Test
  include RailsAppServer
  MiB = RubyChild::MiB
  LEAK_SECONDS = 16
  LEAKS_PER_SECOND = 4

  def start(warmup)
    @server = start_rails_app("growth", env: { "BLOAT_PROBE_WARMUP" => warmup.to_s,
                                               "BLOAT_PROBE_REPORT_INTERVAL" => "0.5",
                                               "BLOAT_PROBE_DIAGNOSIS_INTERVAL" => "1", "BLOAT_PROBE_METRICS" => "1" })
  end

  # Traffic from the start: caches fill and each thread meets its first requests during
  # the warm-up, as in production (where the warm-up is ten minutes).
  def test_page_views_after_the_warm_up_are_a_steady_working_set
    start(8)
    deadline = monotonic + 14
    @server.get("/posts?page=#{rand(1..20)}") while monotonic < deadline
    steady = metrics
    refute_includes %w[live_native native_growth ruby_heap_growth], steady[:verdict], File.read(@log)[-2000..]
    assert_match(/verdict=\w+ .*in_use_growth_mib_per_hour=-?\d+\.\d/, File.read(@log), "a trend after the warm-up")
  end

  def test_a_route_that_keeps_a_mib_per_call_is_native_growth_at_its_rate
    start(2)
    sleep 2
    started = monotonic
    kept = 0
    (LEAK_SECONDS * LEAKS_PER_SECOND).times do |i|
      sleep [started + (i.to_f / LEAKS_PER_SECOND) - monotonic, 0].max
      kept += 1 if @server.get("/workload/keep?bytes=#{MiB}").is_a?(Net::HTTPSuccess)
    end
    elapsed = monotonic - started
    sleep 1.5 # a report or two after the last call
    growing = metrics
    assert_equal "native_growth", growing[:verdict], File.read(@log)[-2000..]
    true_rate = kept * MiB / elapsed * 3600
    assert_in_delta true_rate, growing[:rate], 0.25 * true_rate,
                    format("measured %.0f MiB/h against %.0f kept", growing[:rate] / MiB, true_rate / MiB)
    assert_match(/verdict=native_growth .*in_use_growth_mib_per_hour=\d+\.\d/, File.read(@log))
  end

  private

  def metrics
    text = @server.get("/bloat/metrics").body
    { verdict: text[/^bloat_probe_verdict\{verdict="(\w+)"\} 1$/, 1],
      rate: text[/^bloat_probe_malloc_in_use_growth_bytes_per_hour (\S+)$/, 1].to_f }
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
end
