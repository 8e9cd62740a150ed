# frozen_string_literal: true

module BloatProbe
  # A trial's result where the user already looks: every interval past the warm-up, one
  # `bloat_probe trial` log line per remedy, its workers' figures beside the control's, from
  # the series each worker last published to the cluster's directory. Requests are not
  # spread evenly across workers, so each line says how many the remedy's workers and the
  # control's served; memory and arenas are per worker; durations are over all their calls.
  class TrialReport
    include Periodic

    # The figures compared, each as the remedy's over the control's.
    RATIOS = %i[private pss arenas p50 p99].freeze

    # One remedy against the control: the figures of each, and RATIOS as `<field>_ratio`.
    Comparison = Struct.new(:remedy, :figures, :control, :ratios)

    def self.start(**options)
      new(**options).start
    end

    # interval: seconds between reports; warmup: seconds before the first.
    def initialize(cluster:, interval:, warmup:, log:)
      @cluster = cluster
      @interval = interval
      @log = log
      @first_report_at = Process.clock_gettime(Process::CLOCK_MONOTONIC) + warmup
    end

    def tick
      return if Process.clock_gettime(Process::CLOCK_MONOTONIC) < @first_report_at

      lines.each { |line| @log.call(line) }
    rescue StandardError => e
      @log.call(LogLine.error("trial", e, pid: Process.pid))
    end

    # One line per remedy, from the workers' published series; none until the control and
    # the remedy have each published.
    def lines
      self.class.comparisons(@cluster.peer_series(own: false)).map do |comparison|
        LogLine.format("trial", remedy: comparison.remedy, workers: comparison.figures.workers,
                                requests: comparison.figures.requests, control_requests: comparison.control.requests,
                                **comparison.ratios)
      end
    end

    # Each remedy against the control, from a cluster's published series; none without both.
    def self.comparisons(series)
      by_remedy = ClusterFigures.by_remedy(series)
      control = by_remedy.delete(Trial::CONTROL_NAME) or return []
      by_remedy.map { |remedy, figures| Comparison.new(remedy, figures, control, ratios(figures, control)) }
    end

    def self.ratios(figures, control)
      RATIOS.to_h do |field|
        mine = figures[field]
        theirs = control[field]
        ratio = mine.fdiv(theirs).round(2) if mine && theirs&.positive?
        [:"#{field}_ratio", ratio]
      end
    end
    private_class_method :ratios

    private

    def thread_name = "bloat_probe-trial"

    def work_first? = false
  end
end
