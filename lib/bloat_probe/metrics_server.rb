# frozen_string_literal: true

require "puma"
require "puma/server"

module BloatProbe
  # /metrics from a listener of its own, on an embedded Puma::Server with two threads of
  # its own: a scrape never queues behind the app's requests, which is when memory
  # matters. The Sidekiq integration always serves it so; the Puma plugin does with
  # BLOAT_PROBE_METRICS_PORT. Loopback unless bind says otherwise.
  class MetricsServer
    PORTS = 1..65_535

    attr_reader :url

    def self.check(port:, bind:)
      BloatProbe.check_number("port", port, PORTS, Integer)
      raise TypeError, "bind must be a String address, got #{BloatProbe.excerpt(bind)}" unless bind.is_a?(String)
    end

    # metrics: the Metrics app to serve.
    def initialize(metrics, port:, bind: "127.0.0.1")
      self.class.check(port: port, bind: bind)
      @app = App.new(metrics)
      @port = port
      @bind = bind
      @url = "http://#{bind}:#{port}/metrics"
    end

    def start
      @server = puma_server(@app)
      @server.add_tcp_listener(@bind, @port)
      @server.run
      self
    end

    def stop
      @server&.stop(true)
      @server = nil
    end

    private

    # Puma 6 takes a log writer in the options; Puma 5.6 takes its events second.
    def puma_server(app)
      options = { min_threads: 0, max_threads: 2 }
      if defined?(::Puma::LogWriter)
        ::Puma::Server.new(app, nil, options.merge(log_writer: ::Puma::LogWriter.null))
      else
        ::Puma::Server.new(app, ::Puma::Events.null, options)
      end
    end

    # /metrics, and 404 elsewhere.
    class App
      def initialize(metrics)
        @metrics = metrics
      end

      def call(env)
        return @metrics.call(env) if env["PATH_INFO"] == "/metrics"

        [404, { "content-type" => "text/plain" }, ["bloat_probe serves /metrics\n"]]
      end
    end
  end
end
