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
    # guard: BloatProbe::Guard's options (budget:, mode:, strikes:, interval:) to keep the
    # process within a budget; a restart makes Sidekiq quiet, then stop within its timeout,
    # for its supervisor to start it again. The Trimmer follows BLOAT_PROBE_TRIM_INTERVAL
    # and BLOAT_PROBE_TRIM_MIN, as under Puma. Returns the Integration.
    def self.install(port:, bind: "127.0.0.1", interval: Reporter::DEFAULT_INTERVAL,
                     diagnosis_interval: Recorder::DIAGNOSIS_INTERVAL, warmup: Recorder::WARMUP, guard: nil,
                     config: nil)
      integration = Integration.new(port: port, bind: bind, interval: interval, diagnosis_interval: diagnosis_interval,
                                    warmup: warmup, guard: guard)
      config ? integration.hook(config) : ::Sidekiq.configure_server { |sidekiq| integration.hook(sidekiq) }
      integration
    end

    # One Sidekiq process's probe, its metrics server and its lifecycle: checked and built
    # in the initializer, started and stopped with Sidekiq.
    class Integration
      attr_reader :probe, :server

      def initialize(port:, bind:, interval:, diagnosis_interval:, warmup:, guard:)
        MetricsServer.check(port: port, bind: bind)
        # Checked now, in the initializer, not later on Sidekiq's startup event.
        @interval = BloatProbe.check_number("interval", interval, Reporter::INTERVALS, unit: " seconds")
        @port = port
        @bind = bind
        @stopping = false
        recorder = Recorder.new(diagnosis_interval: diagnosis_interval, warmup: warmup)
        @probe = Probe.new(
          recorder: recorder, trimmer: Trimmer.from_env(recorder: recorder),
          guard: guard && Guard.new(**guard, recorder: recorder, restart: method(:quiet_then_stop),
                                             log: ->(line) { ::Sidekiq.logger.info(line) })
        )
        BloatProbe.probe = @probe
      end

      def hook(sidekiq)
        sidekiq.server_middleware { |chain| chain.add(Middleware, @probe.attribution) }
        sidekiq.on(:startup) { start(sidekiq.logger) }
        sidekiq.on(:shutdown) { stop }
      end

      def start(logger)
        @probe.start(interval: @interval, log: ->(line) { logger.info(line) })
        @server = MetricsServer.new(Metrics.new(probe: @probe), port: @port, bind: @bind, report_interval: @interval)
                               .start
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
        @probe.stop
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
