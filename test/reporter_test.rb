# frozen_string_literal: true

require "test_helper"

# BloatProbe::Reporter and Recorder in this process: the logfmt line, the bounded history,
# a failing tick that logs one line and lets the next one run, and start/stop.
class ReporterTest < Minitest::Test
  def setup
    @lines = []
    @recorder = BloatProbe::Recorder.new(history_size: 3)
  end

  def reporter(cluster: nil)
    probe = BloatProbe::Probe.new(recorder: @recorder, cluster: cluster)
    BloatProbe::Reporter.new(interval: 0.1, probe: probe, log: ->(line) { @lines << line })
  end

  def test_a_tick_logs_one_logfmt_line_with_the_verdict
    reporter.tick
    assert_equal 1, @lines.size
    mib = "\\d+\\.\\d"
    fields = %W[pid=#{Process.pid} verdict=[a-z_]+ rss_mib=#{mib} pss_mib=#{mib} private_mib=#{mib} shared_mib=#{mib}
                malloc_in_use_mib=#{mib} free_mib=#{mib} trimmable_mib=#{mib} arenas=\\d+ ruby_heap_mib=#{mib}
                in_use_growth_mib_per_hour=- allocator=glibc-2\\.\\d+]
    assert_match(/\Abloat_probe #{fields.join(" ")}\z/, @lines.first)
  end

  def test_the_history_is_bounded
    5.times { @recorder.take }
    history = @recorder.history
    assert_equal 3, history.size
    assert_equal history.map(&:time).sort, history.map(&:time)
    assert_in_delta BloatProbe.memory.rss, history.last.rss, 8 << 20
    @recorder.take(record: false)
    assert_equal history, @recorder.history
  end

  # The guard's moment of a moment ago is recorded rather than the process read again, and
  # once only; an older one is not used.
  def test_a_recent_moment_is_recorded_rather_than_read_again
    guards = @recorder.take(record: false)
    assert_same guards, @recorder.take(reuse_within: 60)
    assert_same guards, @recorder.take(reuse_within: 60)
    assert_equal 1, @recorder.history.size
    sleep 0.05
    fresh = @recorder.take(reuse_within: 0.01)
    refute_same guards, fresh
    assert_equal 2, @recorder.history.size
    assert_operator fresh.sample.time, :>, guards.sample.time
  end

  # A cluster directory that vanished, then one that is a file (real failures, not stubs):
  # each tick logs one line naming the reading and counts it, and the next tick, with the
  # directory back, publishes.
  def test_a_failing_tick_logs_one_line_and_the_next_goes_on
    Dir.mktmpdir("bloat_probe-reporter") do |dir|
      cluster = BloatProbe::Cluster.new(File.join(dir, "cluster"))
      cluster.worker = 0
      reporter = reporter(cluster: cluster)
      cluster.remove
      reporter.tick
      File.write(cluster.dir, "not a directory")
      reporter.tick
      assert_equal 2, @lines.size
      %w[ENOENT ENOTDIR].zip(@lines).each do |errno, line|
        assert_match(/\Abloat_probe pid=\d+ reading=cluster error=BloatProbe::ReadingError message="writing /, line)
        assert_includes line, cluster.dir
        assert_includes line, Errno.const_get(errno).new.message
      end
      assert_equal 2, reporter.probe.reading_errors.counts.fetch("cluster")
      FileUtils.rm_f(cluster.dir)
      FileUtils.mkdir_p(cluster.dir)
      reporter.tick
      assert_match(/\Abloat_probe pid=\d+ worker=0 verdict=/, @lines.last)
      assert File.exist?(File.join(cluster.dir, "worker-0.json"))
      errors = BloatProbe::Cluster.new(cluster.dir).peer_series(own: false)
                                  .select { |name, _labels, _value| name == "bloat_probe_reading_errors_total" }
      every = BloatProbe::ReadingErrors::READINGS.to_h { |reading| [reading, 0] }
      counted = errors.to_h { |_name, labels, value| [labels[:reading], value] }
      assert_equal every.merge("cluster" => 2), counted
    end
  end

  # What a worker publishes comes back to the other processes of its cluster: its series,
  # and its history with what it shares and keeps private, as the kernel counts them.
  def test_a_worker_publishes_its_history_with_shared_and_private_memory
    Dir.mktmpdir("bloat_probe-reporter") do |dir|
      cluster = BloatProbe::Cluster.new(File.join(dir, "cluster"))
      cluster.worker = 3
      reporter = reporter(cluster: cluster)
      2.times { reporter.tick }
      kernel = File.read("/proc/self/smaps_rollup").scan(/^(Shared|Private)_(?:Clean|Dirty):\s+(\d+) kB/)
                   .group_by(&:first).transform_values { |rows| rows.sum { |_, kb| Integer(kb) * 1024 } }
      peers = BloatProbe::Cluster.new(cluster.dir).peers(own: false)
      assert_equal([["3", Process.pid]], peers.map { |peer| [peer.worker, peer.pid] })
      assert_equal @recorder.history, peers.first.history
      last = peers.first.history.last
      assert_in_delta kernel.fetch("Private"), last.private, 8 << 20
      assert_in_delta kernel.fetch("Shared"), last.shared, 8 << 20
      assert_includes peers.first.series.map(&:first), "bloat_probe_private_bytes"
      assert_empty cluster.peers, "a process's own publication is left out where it serves its own"
    end
  end

  def test_start_reports_each_interval_and_stop_ends_it_at_once
    running = reporter.start
    sleep 0.35
    assert running.running?
    assert_operator @lines.size, :>=, 3
    slow = BloatProbe::Reporter.new(interval: 3600, probe: BloatProbe::Probe.new(recorder: @recorder),
                                    log: ->(line) { @lines << line }).start
    sleep 0.1
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    slow.stop
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 1,
                    "stop does not wait out the interval"
    refute slow.running?
  ensure
    running&.stop
  end

  def test_bad_settings_name_the_setting
    [0, -1, 10**9, Float::NAN].each do |interval|
      error = assert_raises(RangeError) { BloatProbe::Reporter.new(interval: interval) }
      assert_match(/\Ainterval must be in 0\.1\.\.86400\.0 seconds, got /, error.message)
    end
    error = assert_raises(TypeError) { BloatProbe::Reporter.new(interval: "60") }
    assert_match(/interval must be a number in 0\.1\.\.86400\.0 seconds, got "60" \(String\)/, error.message)
    assert_raises(TypeError) { BloatProbe::Reporter.new(log: "stdout") }
    assert_raises(RangeError) { BloatProbe::Recorder.new(history_size: 1) }
    assert_raises(TypeError) { BloatProbe::Recorder.new(diagnosis_interval: nil) }
  end
end
