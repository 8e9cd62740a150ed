# frozen_string_literal: true

require "test_helper"

# BloatProbe::Footprint against what the test made: the probe's objects by class, its
# threads, its tables; and the Attribution's own CPU per call against the thread's own clock.
class FootprintTest < Minitest::Test
  include RubyChild

  def test_it_counts_the_probe_objects_and_threads_that_exist
    result = run_child(<<~RUBY)
      probe = BloatProbe::Probe.new(attribution: BloatProbe::Attribution.new(overhead_sample: 1))
      before = BloatProbe::Footprint.take(probe)
      kept = Array.new(250) { BloatProbe::Attribution.new }
      7.times { |i| probe.attribution.measure("name-\#{i}") { "x" * 100 } }
      probe.start(interval: 60, log: ->(_line) {})
      sleep 0.2
      after = BloatProbe::Footprint.take(probe)
      probe.stop
      puts JSON.generate(before: before.objects.fetch("BloatProbe::Attribution", 0),
                         after: after.objects.fetch("BloatProbe::Attribution"), threads: after.threads,
                         running: Thread.list.count { |t| t.alive? && t.name&.start_with?("bloat_probe") },
                         names: after.attribution_names, calls: after.attribution_calls, kept: kept.size,
                         history: after.history_samples, recorded: probe.recorder.history.size)
    RUBY
    assert_equal result[:before] + result[:kept], result[:after]
    assert_equal 7, result[:names]
    assert_equal 7, result[:calls]
    assert_equal result[:recorded], result[:history]
    assert_operator result[:threads], :>=, 1, "the reporter runs"
  end

  # The overhead counted is the bookkeeping alone: calls whose blocks burn 2 ms of CPU each
  # cost far less than that, and at least something.
  def test_the_attribution_overhead_leaves_out_the_call_itself
    attribution = BloatProbe::Attribution.new(overhead_sample: 1)
    clock = -> { Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID) }
    spent = 0.0
    20.times do
      attribution.measure("busy") do
        started = clock.call
        nil while clock.call - started < 0.002
        spent += clock.call - started
      end
    end
    calls, cpu = attribution.overhead
    assert_equal 20, calls
    assert_operator cpu, :>, 0
    assert_operator cpu, :<, spent / 10, "the bookkeeping, not the calls' own 2 ms each"
  end

  # One call in overhead_sample is timed, at random: its clock readings are not added to
  # every request.
  def test_the_overhead_is_timed_on_a_sample_of_the_calls
    attribution = BloatProbe::Attribution.new(overhead_sample: 4)
    400.times { attribution.measure("sampled") { nil } }
    calls, cpu = attribution.overhead
    assert_includes 50..150, calls, "about a quarter of 400"
    assert_operator cpu, :>, 0
    error = assert_raises(RangeError) { BloatProbe::Attribution.new(overhead_sample: 0) }
    assert_match(/overhead_sample .*1\.\.1000000, got 0/, error.message)
  end
end
