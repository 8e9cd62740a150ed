# frozen_string_literal: true

require "test_helper"
require "net/http"

# BLOAT_PROBE_METRICS_PORT: rails-app's metrics from a listener of the plugin's own, which
# answers while every request thread is busy, and in cluster mode for every worker.
class MetricsPortTest < Minitest::Test
  include RailsAppServer

  def start(env)
    @metrics_port = AllocatorBench::ChildProcess.free_port
    @server = start_rails_app("port", threads: 2, env: { "BLOAT_PROBE_METRICS_PORT" => @metrics_port.to_s,
                                                         "BLOAT_PROBE_REPORT_INTERVAL" => "0.5" }.merge(env))
  end

  def scrape
    Net::HTTP.start("127.0.0.1", @metrics_port, read_timeout: 10) { |http| http.get("/metrics") }
  end

  def test_a_scrape_is_answered_while_every_request_thread_is_busy
    start({})
    # Each request builds 15,000 strings of 32 KiB (480 MiB) and drops them: long enough.
    busy = Array.new(4) do |i|
      Thread.new { @server.get("/workload/strings?count=15000&min_size=32768&max_size=32768&keep=0&seed=#{i}") }
    end
    sleep 0.3 # both Puma threads are in a request, two more wait
    response = scrape
    assert_equal "200", response.code
    assert_match(/^process_resident_memory_bytes \d+$/, response.body)
    refute busy.all? { |thread| !thread.alive? }, "the requests were still running during the scrape"
    busy.each(&:join)
    assert_equal "404", Net::HTTP.get_response(URI("http://127.0.0.1:#{@metrics_port}/other")).code
    assert_match(%r{bloat_probe metrics on http://127\.0\.0\.1:#{@metrics_port}/metrics}, File.read(@log))
  end

  def test_in_cluster_mode_one_port_answers_for_every_worker
    start("WEB_CONCURRENCY" => "2")
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 30
    workers = []
    while workers.size < 2 && Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      workers = scrape.body.scan(/^bloat_probe_malloc_arenas\{worker="(\d)"\} \d+$/).flatten.uniq.sort
      sleep 0.25
    end
    assert_equal %w[0 1], workers, File.read(@log)[-2000..]
  end
end
