# frozen_string_literal: true

require "test_helper"
require "net/http"

# BloatProbe::Guard in rails-app under Puma's cluster mode (2 workers, preload_app!): the
# worker that keeps 256 MiB passes its 200 MiB budget and is replaced after its strikes,
# gracefully, while page views go on: no request fails, and the other worker lives on. In
# dry-run the same is decided and logged, and nothing is restarted.
class GuardClusterTest < Minitest::Test
  include RailsAppServer
  MiB = RubyChild::MiB
  LOAD_SECONDS = 10
  KEEP_ALIVE_SECONDS = 20

  def start(mode)
    @metrics_port = AllocatorBench::ChildProcess.free_port
    env = { "WEB_CONCURRENCY" => "2", "BLOAT_PROBE_GUARD" => mode, "BLOAT_PROBE_GUARD_BUDGET" => "200M",
            "BLOAT_PROBE_GUARD_STRIKES" => "2", "BLOAT_PROBE_GUARD_INTERVAL" => "1",
            "BLOAT_PROBE_REPORT_INTERVAL" => "0.5", "BLOAT_PROBE_METRICS_PORT" => @metrics_port.to_s }
    @server = start_rails_app("guard", env: env)
  end

  def test_the_worker_over_its_budget_is_replaced_and_no_request_fails
    start("on")
    heavy, other = load_one_worker
    statuses = page_views_for(LOAD_SECONDS)
    assert_equal ["200"], statuses.uniq, "#{statuses.tally}\n#{log_tail}"
    workers = workers_now
    refute_equal heavy[:pid], workers[heavy[:worker]], "worker #{heavy[:worker]} was replaced\n#{log_tail}"
    assert_equal other[:pid], workers[other[:worker]], "worker #{other[:worker]} lives on"
    decision = "action=restart reason=over_budget_2_checks verdict=(\\w+) .*mode=on restarted=true"
    verdict = File.read(@log)[/bloat_probe guard pid=#{heavy[:pid]} #{decision}/, 1]
    refute_nil verdict, log_tail
    assert_restart_counted_across_it(heavy[:worker], other[:worker], verdict)
  end

  # ab -k holds 10 keep-alive connections while workers keep memory past their budget, so
  # that the guard retires one after another. ab stops at the first reset (which it did
  # before BloatProbe::Retirement, in every run of 3); a connection closed
  # while idle it opens again.
  def test_keep_alive_clients_see_no_reset_across_restarts
    skip "ab is not installed (bin/setup installs apache2-utils)" unless system("command -v ab >/dev/null")
    start("on")
    restarts = Thread.new { keep_memory_for(KEEP_ALIVE_SECONDS) }
    out, status = Open3.capture2e("ab", "-k", "-c", "10", "-t", KEEP_ALIVE_SECONDS.to_s, "-n", "1000000",
                                  "http://127.0.0.1:#{@server.port}/posts")
    restarts.join
    retired = File.read(@log).scan(/bloat_probe guard pid=\d+ action=restart .*restarted=true/).size
    assert_operator retired, :>=, 2, "workers the guard retired while ab ran\n#{log_tail}"
    assert status.success?, "ab stopped: #{out[/^apr_\S+.*$/]}\n#{out[-1500..]}"
    failures = out[/\(Connect: (\d+), Receive: (\d+), Length: \d+, Exceptions: (\d+)\)/, 0]
    assert_equal 0, failures.scan(/\d+/).values_at(0, 1, 3).sum(&:to_i), out if failures
    refute_match(/Non-2xx responses/, out)
    # ab counts a response that closed its connection under a length of its own: at most
    # one such per response that said Connection: close.
    closed = out[/Complete requests:\s+(\d+)/, 1].to_i - out[/Keep-Alive requests:\s+(\d+)/, 1].to_i
    assert_operator out[/Length: (\d+)/, 1].to_i, :<=, closed, out
  end

  def test_dry_run_logs_the_restart_and_replaces_nobody
    start("dry-run")
    heavy, other = load_one_worker
    statuses = page_views_for(4)
    assert_equal ["200"], statuses.uniq
    assert_equal({ heavy[:worker] => heavy[:pid], other[:worker] => other[:pid] }, workers_now)
    assert_match(/bloat_probe guard pid=#{heavy[:pid]} action=restart .*mode=dry-run/, File.read(@log))
  end

  private

  # The master's scrape once the replacement has reported: the restart counted in the
  # replaced worker's slot, and the other worker's count there from boot, at 0.
  def assert_restart_counted_across_it(replaced, other, verdict)
    restarts = lambda do |worker|
      scrape = Net::HTTP.get(URI("http://127.0.0.1:#{@metrics_port}/metrics"))
      labels = %(worker="#{worker}",action="restart",verdict="#{verdict}")
      scrape[/^bloat_probe_guard_actions_total\{#{Regexp.escape(labels)}\} (\d+)$/, 1]&.to_i
    end
    deadline = monotonic + 10
    sleep 0.2 until (restarts.call(replaced) || 0) >= 1 || monotonic > deadline
    assert_operator restarts.call(replaced).to_i, :>=, 1, "the replaced worker's slot counts its restart\n#{log_tail}"
    assert_equal 0, restarts.call(other), "the other worker's count, exposed from boot"
  end

  # Four requests on one keep-alive connection, so on one worker, that each keep 64 MiB;
  # then that worker's and the other's pid and index.
  def load_one_worker
    heavy = Net::HTTP.start("127.0.0.1", @server.port, read_timeout: 60) do |http|
      4.times { assert_equal "200", http.get("/workload/keep?bytes=#{64 * MiB}").code }
      who(http.get("/bloat/stats"))
    end
    other = nil
    until other
      seen = who(@server.get("/bloat/stats"))
      other = seen if seen[:worker] != heavy[:worker]
    end
    [heavy, other]
  end

  # Requests that keep 64 MiB each, on one connection at a time, until the time is up: a
  # worker that keeps four is past its budget, and its replacement starts again from
  # nothing. A refused or failed request (the worker retiring under it) is tried again.
  def keep_memory_for(seconds)
    deadline = monotonic + seconds
    while monotonic < deadline
      begin
        @server.get("/workload/keep?bytes=#{64 * MiB}")
      rescue StandardError
        sleep 0.1
      end
    end
  end

  # Page views on fresh connections from 4 clients, bounded in time; their status codes,
  # or the error's class for a request that failed outright.
  def page_views_for(seconds)
    deadline = monotonic + seconds
    Array.new(4) do
      Thread.new do
        statuses = []
        while monotonic < deadline
          statuses << begin
            @server.get("/posts?page=#{rand(1..20)}").code
          rescue StandardError => e
            e.class.name
          end
        end
        statuses
      end
    end.flat_map(&:value)
  end

  # { worker index => pid } as the workers answer now, once both have (bounded: 30 s).
  def workers_now
    workers = {}
    deadline = monotonic + 30
    until workers.size == 2 || monotonic > deadline
      seen = who(@server.get("/bloat/stats"))
      workers[seen[:worker]] = seen[:pid]
    end
    workers
  end

  def who(response)
    process = JSON.parse(response.body, symbolize_names: true).fetch(:process)
    { worker: process.fetch(:worker), pid: process.fetch(:pid) }
  end

  def log_tail
    File.read(@log)[-3000..]
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
end
