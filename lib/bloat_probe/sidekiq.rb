# frozen_string_literal: true

require "bloat_probe"
require "puma"
require "puma/server"

module BloatProbe
  # In a Sidekiq process: the Reporter logs through Sidekiq's logger, and the metrics are
  # served by an embedded Puma::Server on a port of their own, both started and stopped
  # with Sidekiq's lifecycle. One call, in the Sidekiq initializer:
  #
  #   require "bloat_probe/sidekiq"
  #   BloatProbe::Sidekiq.install(port: 9394)   # http://127.0.0.1:9394/metrics
  #
  # bind is 127.0.0.1 unless you say otherwise (a Prometheus on another host needs
  # bind: "0.0.0.0"). Works with Sidekiq 6.4 and 7.
  module Sidekiq
    PORTS = 1..65_535

    class << self
      attr_reader :server

      # guard: BloatProbe::Guard's options (budget:, mode:, strikes:, interval:) to keep the
      # process within a budget; a restart makes Sidekiq quiet, then stop within its
      # timeout, for its supervisor to start it again.
      def install(port:, bind: "127.0.0.1", interval: Reporter::DEFAULT_INTERVAL,
                  diagnosis_interval: Recorder::DIAGNOSIS_INTERVAL, warmup: Recorder::WARMUP, guard: nil, config: nil)
        BloatProbe.check_number("port", port, PORTS, Integer)
        raise TypeError, "bind must be a String address, got #{BloatProbe.excerpt(bind)}" unless bind.is_a?(String)

        # Checked now, in the initializer, not later on Sidekiq's startup event.
        BloatProbe.check_number("interval", interval, Reporter::INTERVALS, unit: " seconds")
        probe = BloatProbe.probe
        probe.recorder = Recorder.new(diagnosis_interval: diagnosis_interval, warmup: warmup)
        probe.guard = guard && Guard.new(**guard, probe: probe, restart: method(:quiet_then_stop),
                                                  log: ->(line) { ::Sidekiq.logger.info(line) })
        hook = lambda do |sidekiq|
          sidekiq.server_middleware { |chain| chain.add(Middleware, probe.attribution) }
          sidekiq.on(:startup) do
            start(port: port, bind: bind, interval: interval, probe: probe, logger: sidekiq.logger)
          end
          sidekiq.on(:shutdown) { stop }
        end
        config ? hook.call(config) : ::Sidekiq.configure_server(&hook)
      end

      def start(port:, bind:, interval:, probe:, logger:)
        @probe = probe
        probe.reporter = Reporter.start(interval: interval, probe: probe, log: ->(line) { logger.info(line) })
        probe.guard&.start
        @server = puma_server(App.new(Metrics.new(probe: probe)))
        @server.add_tcp_listener(bind, port)
        @server.run
        logger.info("bloat_probe metrics on http://#{bind}:#{port}/metrics")
      end

      # TSTP makes Sidekiq take no new jobs; TERM then stops it, giving the running ones
      # its shutdown timeout to finish.
      def quiet_then_stop(_decision)
        Process.kill("TSTP", Process.pid)
        Thread.new do
          sleep 1
          Process.kill("TERM", Process.pid)
        end
        true
      end

      def stop
        @probe&.guard&.stop
        @probe&.reporter&.stop
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
    end

    # Measures each job under its class's name (the job ActiveJob wraps, where it does).
    class Middleware
      def initialize(attribution)
        @attribution = attribution
      end

      def call(_worker, job, _queue, &block)
        @attribution.measure(job["wrapped"] || job["class"], &block)
      end
    end

    # The embedded server's Rack app: /metrics, and 404 elsewhere.
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
