# frozen_string_literal: true

require "test_helper"
require "json"

# WORKLOAD=sidekiq on a tiny load: a real redis-server and a real `sidekiq -c 25` per
# configuration, every job processed (each records its time in Redis as it ends), a row
# each, and no process left behind, also after Ctrl-C.
class SidekiqBenchTest < Minitest::Test
  include ProcessTree
  ROOT = File.expand_path("..", __dir__)
  SCRIPT = File.join(ROOT, "bench/allocator_bench.rb")
  JOBS = 300

  def bench_env(results)
    { "WORKLOAD" => "sidekiq", "CONFIGS" => "glibc,arena2", "JOBS" => JOBS.to_s, "IDLE" => "1",
      "RESULTS_DIR" => results, "PLOT" => "0" }
  end

  # The jobs reach the queue in the workload's order: one export in 200, each where it
  # falls, not gathered after the light jobs of its batch (they would run together).
  def test_jobs_are_queued_in_the_order_the_workload_states
    require_relative "../bench/allocator_bench/workloads"
    settings = Struct.new(:jobs, :threads).new(1000, 25)
    workload = AllocatorBench::Workloads::Sidekiq.new(settings)
    Dir.mktmpdir("bloat_probe-queue") do |dir|
      worker = AllocatorBench::SidekiqWorker.new(nil, threads: 25, log_path: File.join(dir, "sidekiq.log")).connect
      begin
        worker.enqueue(1000, workload.method(:job))
        queued = worker.queued_classes
      ensure
        worker.stop
      end
      assert_equal 1000, queued.size
      exports = queued.each_index.select { |i| queued[i] == "ExportJob" }
      assert_equal [199, 399, 599, 799, 999], exports
    end
  end

  def test_a_small_run_processes_the_jobs_and_leaves_nothing_running
    Dir.mktmpdir("bloat_probe-sidekiq") do |results|
      out, err, status = Open3.capture3(bench_env(results), "timeout", "--kill-after=5", "300", RbConfig.ruby, SCRIPT,
                                        chdir: ROOT)
      assert status.success?, "bench failed:\n#{err}\n#{out}"
      report = JSON.parse(File.read(out[/^JSON: +(\S+)/, 1]), symbolize_names: true)
      assert_equal(%w[glibc arena2], report[:rows].map { |row| row[:config] })
      report[:runs].each do |run|
        assert_equal JOBS, run[:requests], "#{run[:config]}: every job recorded its time"
        assert_operator run[:rps], :>, 0
        assert_operator run[:rss_end_of_load], :>, run[:rss_start], "#{run[:config]}: the jobs took memory"
        [run[:server_pid], run[:redis_pid]].each do |pid|
          refute File.exist?("/proc/#{pid}"), "#{run[:config]}: process #{pid} still running"
        end
      end
      assert_operator report[:runs][0][:arena_count], :>, 2, "25 job threads, many arenas under glibc"
      assert_operator report[:runs][1][:arena_count], :<=, 2
      assert_match(%r{^config +jobs/s +p50 ms}, out)
      assert_match(/^Workload: one Sidekiq process, 25 threads/, out)
      refute_match(/deprecated|Redis#/i, out + err, "redis-rb's notices stay out of the output")
    end
  end

  def test_ctrl_c_stops_sidekiq_and_redis
    Dir.mktmpdir("bloat_probe-sidekiq") do |results|
      env = bench_env(results).merge("JOBS" => "1000000", "CONFIGS" => "glibc")
      Open3.popen3(env, RbConfig.ruby, SCRIPT, chdir: ROOT) do |_in, _out, err, waiter|
        @bench_pid = waiter.pid
        Timeout.timeout(120) { err.each_line { |line| break if line.include?("load,") } }
        children = children_of(waiter.pid)
        assert_equal %w[redis-server sidekiq], children.map { |pid|
                                                 command_of(pid)[/redis-server|sidekiq/]
                                               }.compact.sort
        Process.kill("INT", waiter.pid)
        refute Timeout.timeout(60) { waiter.value }.success?
        children.each { |pid| refute File.exist?("/proc/#{pid}"), "#{command_of(pid)} outlived the bench" }
      end
    end
  end

  def teardown
    Process.kill("KILL", @bench_pid) if @bench_pid && File.exist?("/proc/#{@bench_pid}")
  rescue Errno::ESRCH
    nil
  end
end
