# frozen_string_literal: true

require "fileutils"
require "json"
require "net/http"
require_relative "../allocator_bench/child_process"

module Soak
  # Debian's Prometheus on a free loopback port, scraping the soak's metrics ports every
  # SCRAPE_INTERVAL seconds, its data in the soak's directory; afterwards, the raw samples
  # it stored.
  class Prometheus
    include AllocatorBench::ChildProcess

    SCRAPE_INTERVAL = 5

    attr_reader :url

    # targets: { job name => port }, each serving /metrics.
    def initialize(dir:, targets:)
      @dir = dir
      @targets = targets
      @log_path = File.join(dir, "prometheus.log")
    end

    def start
      port = AllocatorBench::ChildProcess.free_port
      @url = "http://127.0.0.1:#{port}"
      File.write(File.join(@dir, "prometheus.yml"), config)
      spawn_child({}, ["prometheus", "--config.file=#{@dir}/prometheus.yml", "--storage.tsdb.path=#{@dir}/data",
                       "--web.listen-address=127.0.0.1:#{port}"], chdir: @dir)
      wait_until(60, "prometheus") { ready? }
      self
    end

    # Every sample of the selector over the last `seconds`, as Prometheus stored them:
    # [{ metric: labels, values: [[time, value]] }].
    def samples(selector, seconds)
      query = "#{selector}[#{seconds.ceil}s]"
      body = JSON.parse(Net::HTTP.get(URI("#{@url}/api/v1/query?#{URI.encode_www_form(query: query)}")))
      raise "Prometheus refused #{query}: #{body["error"]}" unless body["status"] == "success"

      body.dig("data", "result").map do |series|
        { metric: series["metric"], values: series["values"].map { |time, value| [time.to_f, value.to_f] } }
      end
    end

    def stop
      super
      FileUtils.rm_rf(File.join(@dir, "data"))
    end

    private

    def config
      jobs = @targets.map do |job, port|
        %(  - job_name: #{job}\n    static_configs:\n      - targets: ["127.0.0.1:#{port}"]\n)
      end
      "global:\n  scrape_interval: #{SCRAPE_INTERVAL}s\n  scrape_timeout: #{SCRAPE_INTERVAL - 1}s\n" \
        "scrape_configs:\n#{jobs.join}"
    end

    def ready?
      Net::HTTP.get_response(URI("#{@url}/-/ready")).is_a?(Net::HTTPSuccess)
    rescue StandardError
      false
    end
  end
end
