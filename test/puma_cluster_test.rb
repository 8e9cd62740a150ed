# frozen_string_literal: true

require "test_helper"
require "net/http"

# rails-app in Puma's cluster mode (WEB_CONCURRENCY=2, preload_app!) with the Trimmer on:
# each worker answers with its own pid and index, and trims for itself after the fork.
class PumaClusterTest < Minitest::Test
  include RailsAppServer

  def setup
    @server = start_rails_app("cluster", env: { "WEB_CONCURRENCY" => "2", "BLOAT_PROBE_TRIM_INTERVAL" => "0.05" },
                                         command: :rails_server)
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
