# frozen_string_literal: true

require "test_helper"
require "open3"
require "tempfile"

# Readings that fail on purpose, in a real process whose own /proc files are hidden by a
# bind mount in a mount namespace of its own (root only): the reporter logs one line
# naming the reading and counts it, the guard takes no action on it, and the next interval,
# with the file back, reads and reports again.
class FaultsTest < Minitest::Test
  LIB = File.expand_path("../lib", __dir__)

  # The reporter and a guard whose budget the process is over, with the file ARGV[0]
  # ("PID": the child's own pid) hidden by ARGV[1], then given back.
  SCRIPT = <<~RUBY
    require "json"
    require "bloat_probe"
    hidden = ARGV.fetch(0).sub("PID", Process.pid.to_s)
    system("mount", "--bind", ARGV.fetch(1), hidden, exception: true)
    probe = BloatProbe::Probe.new(recorder: BloatProbe::Recorder.new(warmup: 0))
    lines = []
    reporter = BloatProbe::Reporter.new(interval: 60, probe: probe, log: ->(line) { lines << line })
    restarts = []
    guard = BloatProbe::Guard.new(budget: "1M", strikes: 1, recorder: probe.recorder, log: ->(line) { lines << line },
                                  restart: ->(decision) { restarts << decision.reason; true })
    reporter.tick
    failed_check = guard.tick
    system("umount", hidden, exception: true)
    reporter.tick
    series = BloatProbe::Metrics::Families.series(BloatProbe::Metrics::Snapshot.of(probe, probe.recorder.take))
    errors = series.select { |name, _labels, _value| name == "bloat_probe_reading_errors_total" }
    puts JSON.generate(lines: lines, failed_check: failed_check, restarts: restarts,
                       errors: errors.to_h { |_name, labels, value| [labels[:reading], value] })
  RUBY
  NAMESPACE = %w[unshare --mount --propagation private].freeze

  # /proc/PID/statm (read at every moment, and kept open once it has given a reading)
  # empty: the moment's first reading, the arenas' stats, takes RSS from it.
  def test_a_reading_that_fails_is_logged_counted_and_not_acted_on_and_the_next_recovers
    result = hide("/proc/PID/statm", "/dev/null")
    assert_failed_once(result, "arena_stats", "reading /proc/self/statm: ")
  end

  # /proc/PID/smaps_rollup empty: the moment's detailed memory (PSS, USS, swap) walks it.
  def test_an_unreadable_smaps_rollup_is_logged_counted_and_not_acted_on_and_the_next_recovers
    result = hide("/proc/PID/smaps_rollup", "/dev/null")
    assert_failed_once(result, "memory", "reading /proc/self: no Shared_Clean: line in smaps_rollup")
  end

  # The cgroup's memory usage file saying what no kernel writes.
  def test_a_malformed_cgroup_file_is_logged_counted_and_not_acted_on_and_the_next_recovers
    usage = cgroup_usage_file
    skip "no cgroup memory usage file to hide" unless usage
    Tempfile.create("bloat_probe-cgroup") do |garbage|
      File.write(garbage.path, "garbage\n")
      result = hide(usage, garbage.path)
      assert_failed_once(result, "cgroup", "malformed cgroup files: #{usage}: \\\"garbage\\\"")
    end
  end

  # This process's (and so its child's) memory usage file, v1 or v2.
  def cgroup_usage_file
    own = File.read("/proc/self/cgroup")
    candidates = if (v1 = own[/^\d+:[^:]*\bmemory\b[^:]*:(.*)$/, 1])
                   ["/sys/fs/cgroup/memory#{v1}/memory.usage_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"]
                 else
                   v2 = own[/^0::(.*)$/, 1].to_s
                   ["/sys/fs/cgroup#{v2}/memory.current", "/sys/fs/cgroup/memory.current"]
                 end
    candidates.map { |path| path.squeeze("/") }.find { |path| File.file?(path) }
  end

  def hide(path, with)
    _out, err, status = Open3.capture3(*NAMESPACE, "true")
    skip "a mount namespace of its own needs root (CAP_SYS_ADMIN): #{err.strip}" unless status.success?

    out, err, status = Open3.capture3(*NAMESPACE, "timeout", "60", RbConfig.ruby, "-I", LIB, "-e", SCRIPT, path, with)
    assert status.success?, err
    JSON.parse(out.lines.last, symbolize_names: true)
  end

  # One line naming the reading, counted once; the guard decided nothing; the next report
  # went on.
  def assert_failed_once(result, reading, message)
    lines = result[:lines]
    assert_match(/\Abloat_probe pid=\d+ reading=#{reading} error=BloatProbe::ReadingError /, lines[0])
    assert_includes lines[0], "message=\"#{message}", lines[0]
    assert_match(/\Abloat_probe guard pid=\d+ error=BloatProbe::ReadingError /, lines[1])
    assert_nil result[:failed_check], "the guard decides nothing on a failed reading"
    assert_empty result[:restarts]
    assert_match(/\Abloat_probe pid=\d+ verdict=/, lines[2], "the next interval reads again")
    assert_equal 3, lines.size, lines.join("\n")
    every = BloatProbe::ReadingErrors::READINGS.to_h { |name| [name.to_sym, 0] }
    assert_equal every.merge(reading.to_sym => 1), result[:errors]
  end

  # libfaketime steps this one process's wall clock (CLOCK_REALTIME; the monotonic clock
  # untouched, as NTP or a resumed VM leave it) when the test writes an offset to a file.
  FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

  # Three reports, a step of the wall clock back by an hour, then a scrape's moment and two
  # more reports.
  CLOCK_SCRIPT = <<~RUBY
    require "json"
    require "bloat_probe"
    offset = ARGV.fetch(0)
    probe = BloatProbe::Probe.new(recorder: BloatProbe::Recorder.new(warmup: 0, diagnosis_interval: 1))
    lines = []
    reporter = BloatProbe::Reporter.new(interval: 60, probe: probe, log: ->(line) { lines << line })
    3.times do
      reporter.tick
      sleep 0.2
    end
    before = probe.recorder.moment
    File.write(offset, "-3600\n")
    sleep 1.2 # past the diagnosis interval, by the monotonic clock
    after = probe.recorder.moment
    2.times { reporter.tick }
    times = probe.recorder.history.map(&:time)
    puts JSON.generate(lines: lines, fresh: !after.equal?(before), age: Time.now.to_f - after.time, times: times,
                       errors: probe.reading_errors.counts)
  RUBY

  def test_a_step_of_the_wall_clock_is_logged_counted_and_the_history_moves_with_it
    skip "libfaketime is not installed (bin/setup installs it)" unless File.exist?(FAKETIME)

    Tempfile.create("bloat_probe-clock") do |offset|
      File.write(offset.path, "+0\n")
      env = { "LD_PRELOAD" => FAKETIME, "FAKETIME_TIMESTAMP_FILE" => offset.path, "FAKETIME_NO_CACHE" => "1",
              "DONT_FAKE_MONOTONIC" => "1" }
      out, err, status = Open3.capture3(env, "timeout", "60", RbConfig.ruby, "-I", LIB, "-e", CLOCK_SCRIPT, offset.path)
      assert status.success?, err
      result = JSON.parse(out.lines.last, symbolize_names: true)
      assert result[:fresh], "a scrape after the step gets a fresh moment, not the one from before it"
      assert_operator result[:age], :<, 1, "the scrape's moment is of now, by the stepped clock"
      clock_lines = result[:lines].grep(/reading=clock/)
      assert_equal 1, clock_lines.size, result[:lines].join("\n")
      assert_match(/\Abloat_probe pid=\d+ reading=clock error=BloatProbe::ReadingError /, clock_lines.first)
      assert_match(/message="the wall clock stepped by -3600\.\d s; the history's times moved with it"/,
                   clock_lines.first)
      assert_equal 5, result[:lines].grep(/\Abloat_probe pid=\d+ verdict=/).size, "every report went on"
      times = result[:times]
      assert_equal times.sort, times, "the history stays in order"
      assert_operator times.last - times.first, :<, 60, "it spans the seconds that passed, not the hour stepped"
      assert_equal 1, result[:errors][:clock]
    end
  end
end
