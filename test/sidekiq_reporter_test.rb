# frozen_string_literal: true

require "test_helper"
require "net/http"
require_relative "../bench/allocator_bench/sidekiq_worker"

# BloatProbe::Sidekiq.install in a real `sidekiq` (Debian's 6.4 or 7.3) with its own
# redis-server: the reporter logs through Sidekiq's logger, the metrics come from a
# MetricsServer on a loopback port, and both stop with Sidekiq.
class SidekiqReporterTest < Minitest::Test
  include ProcessTree

  INITIALIZER = File.expand_path("fixtures/sidekiq_initializer.rb", __dir__)

  def setup
    @dir = Dir.mktmpdir("bloat_probe-sidekiq-reporter")
    @redis = AllocatorBench::RedisServer.new(log_path: File.join(@dir, "redis.log")).start
  end

  def teardown
    if @sidekiq && File.exist?("/proc/#{@sidekiq}")
      Process.kill("KILL", @sidekiq)
      Process.wait(@sidekiq)
    end
    @redis&.stop
    FileUtils.rm_rf(@dir)
  end

  def test_sidekiq_reports_and_serves_metrics_until_it_stops
    require "sidekiq"
    # redis-rb 4.8 (Debian 12) notices on Sidekiq 6.4's push, not errors.
    Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)
    port = AllocatorBench::ChildProcess.free_port
    log = File.join(@dir, "sidekiq.log")
    @sidekiq = Process.spawn({ "REDIS_URL" => @redis.url, "METRICS_PORT" => port.to_s },
                             "sidekiq", "-c", "10", "-r", INITIALIZER, out: log, err: %i[child out], chdir: @dir)
    metrics = wait_for("the metrics port", log) { get(port, "/metrics") }
    assert_equal "text/plain; version=0.0.4; charset=utf-8", metrics["content-type"]
    assert_match(/^process_resident_memory_bytes \d+$/, metrics.body)
    out, status = Open3.capture2e("promtool", "check", "metrics", stdin_data: metrics.body)
    assert status.success? && out.empty?, out
    assert_equal "404", get(port, "/").code

    pool = Sidekiq::RedisConnection.create(url: @redis.url, size: 1)
    Sidekiq::Client.via(pool) { 40.times { |seed| Sidekiq::Client.push("class" => "FragmentJob", "args" => [seed]) } }
    wait_for("jobs done", log) { pool.with { |redis| redis.call("GET", "stat:processed").to_i >= 40 } }
    arenas = wait_for("arenas in the scrape", log) do
      count = get(port, "/metrics").body[/^bloat_probe_malloc_arenas (\d+)$/, 1].to_i
      count if count > 1
    end
    assert_operator arenas, :>, 1, "10 job threads, arenas of their own"
    # Each job measured under its class by the server middleware that install adds. A busy
    # process's scrape may serve the figures rendered before the last jobs ended: the next
    # ones catch up.
    calls = wait_for("40 calls in the scrape", log) do
      count = get(port, "/metrics").body[/^bloat_probe_endpoint_calls_total\{endpoint="FragmentJob"\} (\d+)$/, 1]
      count if count.to_i >= 40
    end
    assert_equal 40, Integer(calls)
    line = wait_for("a report in Sidekiq's log", log) do
      File.read(log)[/bloat_probe pid=#{@sidekiq} verdict=\w+ .*arenas=(\d+)/]
    end
    assert_match(/rss_mib=[\d.]+ pss_mib=[\d.]+/, line)

    Process.kill("TERM", @sidekiq)
    Timeout.timeout(30) { Process.wait(@sidekiq) }
    assert_raises(Errno::ECONNREFUSED) { get(port, "/metrics") }
    refute_match(/bloat_probe pid=\d+ error=/, File.read(log))
  end

  # The guard in Sidekiq: jobs that keep 4 MiB each take the process over its budget; the
  # guard makes it quiet, then TERM stops it within its timeout; the test's supervisor
  # loop starts it again, as systemd or Kubernetes would, until every job is done.
  JOBS = 60
  STARTS = 6

  def test_the_guard_restarts_sidekiq_and_every_job_runs_exactly_once
    require "sidekiq"
    Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)
    log = File.join(@dir, "sidekiq.log")
    pool = Sidekiq::RedisConnection.create(url: @redis.url, size: 1)
    Sidekiq::Client.via(pool) { JOBS.times { |seed| Sidekiq::Client.push("class" => "HoldJob", "args" => [seed]) } }
    done = -> { pool.with { |redis| redis.call("HGETALL", "hold_job:done") }.to_a.flatten.each_slice(2).to_h }
    exits = []
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 240
    while done.call.size < JOBS && exits.size < STARTS && Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      env = { "REDIS_URL" => @redis.url, "METRICS_PORT" => AllocatorBench::ChildProcess.free_port.to_s,
              "GUARD_BUDGET" => "160M" }
      @sidekiq = Process.spawn(env, "sidekiq", "-c", "2", "-t", "10", "-r", INITIALIZER,
                               out: [log, "a"], err: %i[child out], chdir: @dir)
      exits << [@sidekiq, wait_for_exit(@sidekiq, deadline, done)]
    end
    counts = done.call
    assert_equal JOBS, counts.size, "jobs done after #{exits.size} starts\n#{File.read(log)[-3000..]}"
    assert_equal ["1"], counts.values.uniq, "each job ran exactly once: #{counts.inspect}"
    restarted = exits.select { |_pid, status| status&.success? }
    refute_empty restarted, "a Sidekiq that stopped by itself, with status 0: #{exits.inspect}"
    text = File.read(log)
    restarted.each do |pid, _status|
      decision = "action=restart reason=over_budget_2_checks verdict=\\w+ .* budget_mib=160\\.0 .*restarted=true"
      assert_match(/bloat_probe guard pid=#{pid} #{decision}/, text)
    end
    assert_equal "0", pool.with { |redis| redis.call("GET", "stat:failed") }.to_s.sub(/\A\z/, "0")
  end

  def test_bad_settings_raise_in_the_initializer
    require "bloat_probe/sidekiq"
    error = assert_raises(RangeError) { BloatProbe::Sidekiq.install(port: 0) }
    assert_match(/port must be in 1\.\.65535, got 0/, error.message)
    error = assert_raises(TypeError) { BloatProbe::Sidekiq.install(port: 9394, interval: "60") }
    assert_match(/interval must be a number in 0\.1\.\.86400\.0 seconds, got "60"/, error.message)
    assert_raises(RangeError) { BloatProbe::Sidekiq.install(port: 9394, diagnosis_interval: 0) }
  end

  private

  def get(port, path)
    Net::HTTP.start("127.0.0.1", port, open_timeout: 1, read_timeout: 5) { |http| http.get(path) }
  end

  # Waits for the process to end by itself (the guard's restart) or until every job is
  # done, when it is stopped; its exit status, or nil where the test had to stop it.
  def wait_for_exit(pid, deadline, done)
    loop do
      _, status = Process.wait2(pid, Process::WNOHANG)
      return status if status

      if done.call.size >= JOBS || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        Process.kill("TERM", pid)
        Timeout.timeout(30) { Process.wait(pid) }
        return nil
      end
      sleep 0.25
    end
  end

  # The block's first truthy value, polled for up to 60 s while Sidekiq runs.
  def wait_for(what, log)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 60
    loop do
      begin
        value = yield
        return value if value
      rescue SystemCallError, IOError, Net::OpenTimeout, Net::ReadTimeout
        nil
      end
      if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        flunk "#{what}: not within 60 s\n#{File.read(log)[-3000..]}"
      end
      sleep 0.25
    end
  end
end
