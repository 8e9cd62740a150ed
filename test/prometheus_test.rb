# frozen_string_literal: true

require "test_helper"
require "net/http"
require "uri"
require_relative "../bench/allocator_bench/configuration"
require_relative "../bench/allocator_bench/server"

# A real Prometheus (Debian's package) scrapes rails-app's /bloat/metrics every second,
# with our rules loaded; after a workload its HTTP API has the arenas, the verdict and the
# recording rule. The rules also pass promtool's check and its unit tests.
class PrometheusTest < Minitest::Test
  ROOT = File.expand_path("..", __dir__)
  RULES = File.join(ROOT, "prometheus/bloat_probe.rules.yml")

  def setup
    skip "prometheus is not installed (bin/setup installs it)" unless system("command -v prometheus >/dev/null")
    @dir = Dir.mktmpdir("bloat_probe-prometheus")
  end

  def teardown
    @server&.stop
    if @prometheus
      Process.kill("TERM", @prometheus)
      Process.wait(@prometheus)
    end
    FileUtils.rm_rf(@dir) if @dir
  end

  def test_the_rules_pass_promtool
    out, status = Open3.capture2e("promtool", "check", "rules", RULES)
    assert status.success?, out
    assert_match(/SUCCESS: 2 rules found/, out)
    out, status = Open3.capture2e("promtool", "test", "rules", File.join(ROOT, "prometheus/bloat_probe.rules.test.yml"))
    assert status.success?, out
  end

  def test_prometheus_scrapes_the_arenas_and_the_verdict
    config = AllocatorBench::Configuration.new(
      name: "scraped", summary: "metrics on",
      env: { "BLOAT_PROBE_METRICS" => "1", "BLOAT_PROBE_REPORT_INTERVAL" => "1",
             "BLOAT_PROBE_DIAGNOSIS_INTERVAL" => "1" }
    )
    @server = AllocatorBench::Server.new(config, threads: 25, log_path: File.join(@dir, "puma.log")).start
    @api = start_prometheus(@server.port)

    # 25 clients at once: each Puma thread allocates in an arena of its own.
    Array.new(25) { |i| Thread.new { 4.times { |j| @server.get("/workload/strings?count=2000&seed=#{i * 10 + j}") } } }
         .each(&:join)

    arenas = wait_for_query("bloat_probe_malloc_arenas") { |result| result.any? { |r| r["value"][1].to_f > 1 } }
    assert_operator arenas.first["value"][1].to_i, :>, 1, "arenas as Prometheus stored them"
    assert_equal "scraped", arenas.first.dig("metric", "job")
    verdict = wait_for_query("bloat_probe_verdict == 1") { |result| result.size == 1 }
    assert_includes BloatProbe::Diagnosis::VERDICTS.map(&:to_s), verdict.first.dig("metric", "verdict")
    ratio = wait_for_query("bloat_probe:malloc_free_ratio", &:any?)
    assert_includes 0.0..1.0, ratio.first["value"][1].to_f, "the recording rule ran"
  end

  private

  def start_prometheus(target_port)
    port = AllocatorBench::ChildProcess.free_port
    File.write(File.join(@dir, "prometheus.yml"), <<~YAML)
      global:
        scrape_interval: 1s
        evaluation_interval: 1s
      rule_files: [#{RULES.inspect}]
      scrape_configs:
        - job_name: scraped
          metrics_path: /bloat/metrics
          static_configs:
            - targets: ["127.0.0.1:#{target_port}"]
    YAML
    @prometheus = Process.spawn("prometheus", "--config.file=#{@dir}/prometheus.yml",
                                "--storage.tsdb.path=#{@dir}/data", "--web.listen-address=127.0.0.1:#{port}",
                                out: File.join(@dir, "prometheus.log"), err: %i[child out])
    api = URI("http://127.0.0.1:#{port}")
    wait("Prometheus ready") do
      Net::HTTP.get_response(URI.join(api, "/-/ready")).is_a?(Net::HTTPSuccess)
    rescue StandardError
      false
    end
    api
  end

  def wait_for_query(query, &done)
    result = nil
    wait("#{query} in Prometheus") do
      response = Net::HTTP.get_response(URI.join(@api, "/api/v1/query?#{URI.encode_www_form(query: query)}"))
      result = JSON.parse(response.body).dig("data", "result")
      result && done.call(result)
    end
    result
  end

  # Polls for up to 30 s.
  def wait(what)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 30
    until yield
      if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        flunk "#{what}: not after 30 s\n#{File.read(File.join(@dir, "prometheus.log"))[-3000..]}"
      end
      sleep 0.25
    end
  end
end
