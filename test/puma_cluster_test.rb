# frozen_string_literal: true

require "test_helper"
require "net/http"
require_relative "../bench/allocator_bench/configuration"
require_relative "../bench/allocator_bench/server"

# rails-app in Puma's cluster mode (WEB_CONCURRENCY=2, preload_app!) with the Trimmer on:
# each worker answers with its own pid and index, and trims for itself after the fork.
class PumaClusterTest < Minitest::Test
  def setup
    config = AllocatorBench::Configuration.new(
      name: "cluster", env: { "WEB_CONCURRENCY" => "2", "BLOAT_PROBE_TRIM_INTERVAL" => "0.05" }, summary: "2 workers"
    )
    @log = scratch_log("bloat_probe-cluster")
    @server = AllocatorBench::Server.new(config, threads: 4, log_path: @log, command: :rails_server).start
  end

  def teardown
    @server&.stop
  end

  def test_each_worker_reports_itself_and_trims_on_its_own
    first = stats_of_each_worker
    assert_equal [0, 1], first.keys.sort, File.read(@log)
    pids = first.values.map { _1.process[:pid] }
    assert_equal 2, pids.uniq.size
    refute_includes pids, @server.pid, "workers, not the master, answer"
    sleep 0.5
    later = stats_of_each_worker
    # The count a worker inherited from the master at fork stays put unless it trims itself.
    first.each do |index, stats|
      assert_operator later[index].trimmer[:trims], :>, stats.trimmer[:trims], "worker #{index} trims"
    end
  end

  private

  # Requests until both workers have answered (the kernel picks who accepts), bounded.
  def stats_of_each_worker
    workers = {}
    200.times do
      stats = @server.stats
      workers[stats.process[:worker]] = stats
      return workers if workers.size == 2

      sleep 0.02
    end
    workers
  end
end
