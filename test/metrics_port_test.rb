# frozen_string_literal: true

require "test_helper"
require "net/http"

# BLOAT_PROBE_METRICS_PORT: rails-app's metrics from a listener of the plugin's own, which
# answers while every request thread is busy, and in cluster mode for every worker.
class MetricsPortTest < Minitest::Test
  include RailsAppServer

  REPORT_INTERVAL = 0.5

  def start(env)
    @metrics_port = AllocatorBench::ChildProcess.free_port
    env = { "BLOAT_PROBE_METRICS_PORT" => @metrics_port.to_s, "BLOAT_PROBE_REPORT_INTERVAL" => REPORT_INTERVAL.to_s,
            **env }
    @server = start_rails_app("port", threads: 2, env: env)
  end

  def scrape
    Net::HTTP.start("127.0.0.1", @metrics_port, read_timeout: 10) { |http| http.get("/metrics") }
  end

  def test_a_scrape_is_answered_while_every_request_thread_is_busy
    start({})
    sleep 4 * REPORT_INTERVAL # what the listener was started with is old by now
    # Each request builds 15,000 strings of 32 KiB (480 MiB) and drops them: long enough.
    busy = Array.new(4) do |i|
      Thread.new { @server.get("/workload/strings?count=15000&min_size=32768&max_size=32768&keep=0&seed=#{i}") }
    end
    sleep 0.3 # both Puma threads are in a request, two more wait
    asked_at = Time.now.to_f
    response = scrape
    assert_equal "200", response.code
    assert_match(/^process_resident_memory_bytes \d+$/, response.body)
    assert_fresh(response.body, asked_at)
    refute busy.all? { |thread| !thread.alive? }, "the requests were still running during the scrape"
    busy.each(&:join)
    assert_equal "404", Net::HTTP.get_response(URI("http://127.0.0.1:#{@metrics_port}/other")).code
    assert_match(%r{bloat_probe metrics on http://127\.0\.0\.1:#{@metrics_port}/metrics}, File.read(@log))
  end

  # Whether the scrape got a fresh render or (Ruby too busy to render within the listener's
  # wait) the last one, which the server renders ahead: no figure older than two report
  # intervals.
  def assert_fresh(body, asked_at)
    %w[bloat_probe_metrics_rendered_timestamp_seconds bloat_probe_diagnosis_timestamp_seconds].each do |name|
      taken = body[/^#{name} (\S+)$/, 1]
      refute_nil taken, name
      assert_operator asked_at - taken.to_f, :<=, 2 * REPORT_INTERVAL, "#{name} at a scrape sent at #{asked_at}"
    end
  end

  # A worker SIGKILLed while scrapes keep coming: every scrape is answered, and Puma's
  # replacement (a process started later) publishes in the dead one's slot.
  def test_a_worker_killed_mid_scrape_leaves_every_scrape_answered
    start("WEB_CONCURRENCY" => "2")
    before = started_workers { |starts| starts.size == 2 }
    assert_equal %w[0 1], before.keys.sort, File.read(@log)[-2000..]
    victim = Dir["/proc/#{@server.pid}/task/*/children"].flat_map { |path| File.read(path).split }.first
    answers = []
    scraper = Thread.new do
      40.times do
        response = scrape
        answers << [response.code, response.body.scan(/^process_resident_memory_bytes\{worker="(\w+)"\}/).flatten]
        sleep 0.05
      end
    end
    sleep 0.5
    Process.kill("KILL", Integer(victim))
    scraper.join
    assert_equal 40, answers.size
    answers.each do |code, workers|
      assert_equal "200", code
      assert_includes workers, "master"
      refute_empty workers - ["master"], "a live worker's series in every scrape"
    end
    after = started_workers { |starts| starts.size == 2 && starts != before }
    replaced = after.keys.reject { |worker| after[worker] == before[worker] }
    assert_equal 1, replaced.size, "one slot has a new process: #{before} then #{after}"
    assert_operator after[replaced.first], :>, before[replaced.first]
  end

  def test_in_cluster_mode_one_port_answers_for_every_worker
    start("WEB_CONCURRENCY" => "2")
    assert_equal %w[0 1], started_workers { |starts| starts.size == 2 }.keys.sort, File.read(@log)[-2000..]
    assert_shared_and_private_per_process(scrape.body)
  end

  # { worker index => its process's start time } from scrapes, once `done` holds of it
  # (30 s at most).
  def started_workers(&done)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 30
    starts = {}
    until done.call(starts) || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep 0.25
      # The master opens the port once every worker has booted; a worker may answer before.
      body = begin
        scrape.body
      rescue Errno::ECONNREFUSED
        ""
      end
      starts = body.scan(/^process_start_time_seconds\{worker="(\d)"\} (\S+)$/).to_h.transform_values(&:to_f)
    end
    starts
  end

  # Each worker's shared and private bytes (smaps_rollup) add up to its RSS (statm), and
  # after preload_app! it shares Rails with the master. The master's row is its reading of
  # itself after its last fork; since then its private memory can only have grown (each page
  # a worker copies on write becomes the master's alone, RSS unchanged), so the kernel's
  # reading now is at least it, and its shared and private add up to its RSS as a worker's do.
  def assert_shared_and_private_per_process(body)
    value = ->(name, worker, extra = "") { body[/^#{name}\{worker="#{worker}"#{extra}\} (\d+)$/, 1]&.to_i }
    sharing = ->(kind, worker) { %w[clean dirty].sum { |state| value.call(kind, worker, ",state=\"#{state}\"") } }
    %w[0 1 master].each do |worker|
      shared = sharing.call("bloat_probe_shared_bytes", worker)
      private = sharing.call("bloat_probe_private_bytes", worker)
      rss = value.call("process_resident_memory_bytes", worker)
      assert_in_delta rss, shared + private, [rss / 50, 4 << 20].max, "worker #{worker}: shared + private is RSS"
      assert_operator shared, :>=, 8 << 20, "worker #{worker} shares the preloaded app"
    end
    rollup = File.read("/proc/#{@server.pid}/smaps_rollup")
    kernel = ->(key) { Integer(rollup[/^#{key}:\s+(\d+) kB/, 1]) * 1024 }
    published = sharing.call("bloat_probe_private_bytes", "master")
    assert_operator published, :>=, 1 << 20, "the master's private memory"
    assert_operator published, :<=, kernel.call("Private_Clean") + kernel.call("Private_Dirty") + (4 << 20)
  end
end
