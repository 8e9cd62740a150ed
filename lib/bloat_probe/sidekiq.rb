# frozen_string_literal: true

require "bloat_probe"
require "bloat_probe/metrics_server"

module BloatProbe
  # In a Sidekiq process: the Reporter logs through Sidekiq's logger, and the metrics are
  # served by a MetricsServer on a port of their own, both started and stopped
  # with Sidekiq's lifecycle. One call, in the Sidekiq initializer:
  #
  #   require "bloat_probe/sidekiq"
  #   BloatProbe::Sidekiq.install(port: 9394)   # http://127.0.0.1:9394/metrics
  #
  # bind is 127.0.0.1 unless you say otherwise (a Prometheus on another host needs
  # bind: "0.0.0.0"). Works with Sidekiq 6.4 and 7.
  module Sidekiq
    class << self
      attr_reader :server

      # guard: BloatProbe::Guard's options (budget:, mode:, strikes:, interval:) to keep the
      # process within a budget; a restart makes Sidekiq quiet, then stop within its
      # timeout, for its supervisor to start it again.
      def install(port:, bind: "127.0.0.1", interval: Reporter::DEFAULT_INTERVAL,
                  diagnosis_interval: Recorder::DIAGNOSIS_INTERVAL, warmup: Recorder::WARMUP, guard: nil, config: nil)
        MetricsServer.check(port: port, bind: bind)

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
        @server = MetricsServer.new(Metrics.new(probe: probe), port: port, bind: bind).start
        logger.info("bloat_probe metrics on #{@server.url}")
      end

      # TSTP makes Sidekiq take no new jobs; TERM then stops it, giving the running ones
      # its shutdown timeout to finish. Once: the guard's later checks find it stopping.
      def quiet_then_stop(_decision)
        return true if @stopping

        @stopping = true
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
        @server&.stop
        @server = nil
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
  end
end
