# frozen_string_literal: true

module BloatProbe
  # /metrics from a listener of its own, answered on a native thread that needs no GVL: a
  # scrape neither queues behind the app's requests nor waits for the GVL behind their
  # threads, which is when memory matters. A Ruby thread renders the figures when a scrape
  # asks; a scrape that gets none within a short wait (every thread busy; FRESH_WAIT in
  # metrics_listener.rs) is answered with the last ones, which the renderer keeps within
  # half a report interval of now by rendering ahead when no scrape asks: a busy process's
  # figures are then no older than its report interval, not its scrape interval. The
  # Sidekiq integration always serves it so; the Puma plugin does with
  # BLOAT_PROBE_METRICS_PORT. Loopback unless bind says otherwise.
  class MetricsServer
    PORTS = 1..65_535
    REQUEST = { "REQUEST_METHOD" => "GET", "PATH_INFO" => "/metrics" }.freeze

    attr_reader :url

    def self.check(port:, bind:)
      BloatProbe.check_number("port", port, PORTS, Integer)
      raise TypeError, "bind must be a String address, got #{BloatProbe.excerpt(bind)}" unless bind.is_a?(String)
    end

    # metrics: the Metrics app to serve. report_interval: the Reporter's, in seconds.
    def initialize(metrics, port:, bind: "127.0.0.1", report_interval: Reporter::DEFAULT_INTERVAL)
      self.class.check(port: port, bind: bind)
      @metrics = metrics
      @render_ahead = BloatProbe.check_number("report_interval", report_interval, Reporter::INTERVALS,
                                              unit: " seconds") / 2.0
      @port = port
      @bind = bind
      @url = "http://#{bind}:#{port}/metrics"
    end

    def start
      @listener = MetricsListener.start(@bind, @port, Metrics::Exposition::CONTENT_TYPE, render)
      @renderer = Thread.new do
        Thread.current.name = "bloat_probe-metrics"
        loop do
          # nil: no scrape asked in time; 0 answers none.
          asked = @listener.wait_for_scrape(@render_ahead)
          @listener.publish(render, asked || 0)
        end
      end
      self
    end

    def stop
      @renderer&.kill&.join
      @listener&.stop
      @renderer = @listener = nil
    end

    private

    # A render that fails is served as a comment: the scrape has no samples, and says why.
    def render
      _status, _headers, body = @metrics.call(REQUEST)
      body.join
    rescue StandardError => e
      "# bloat_probe could not render the metrics: #{e.class}: #{e.message[0, 200]}\n"
    end
  end
end
