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
    Figures = Struct.new(:workers, :requests, :private, :pss, :arenas, :p50, :p99)

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
      by_remedy = self.class.figures(@cluster.peer_series(own: false))
      control = by_remedy.delete(Trial::CONTROL_NAME) or return []
      by_remedy.map do |remedy, figures|
        LogLine.format("trial", remedy: remedy, workers: figures.workers, requests: figures.requests,
                                control_requests: control.requests, **ratios(figures, control))
      end
    end

    # Per remedy label, the figures of its workers.
    def self.figures(series)
      workers = series.group_by { |_name, labels, _value| labels.values_at(:worker, :remedy) }
                      .reject { |(worker, remedy), _| worker.nil? || remedy.nil? || worker == "master" }
      workers.group_by { |(_worker, remedy), _| remedy }.transform_values do |members|
        of_workers(members.map(&:last))
      end
    end

    def self.of_workers(workers)
      sum = ->(name) { workers.sum { |series| total(series, name) } }
      buckets = workers.flat_map { |series| samples(series, "bloat_probe_call_duration_seconds_bucket") }
                       .group_by { |labels, _| labels[:le] == "+Inf" ? Float::INFINITY : Float(labels[:le]) }
                       .map { |bound, samples| [bound, samples.sum(&:last)] }.sort_by(&:first)
      Figures.new(workers.size, sum.call("bloat_probe_endpoint_calls_total"),
                  sum.call("bloat_probe_private_bytes") / workers.size,
                  sum.call("bloat_probe_proportional_memory_bytes") / workers.size,
                  sum.call("bloat_probe_malloc_arenas").fdiv(workers.size),
                  Durations.quantile(buckets, 0.5), Durations.quantile(buckets, 0.99))
    end

    def self.samples(series, name)
      series.filter_map { |sample_name, labels, value| [labels, value] if sample_name == name }
    end

    def self.total(series, name)
      samples(series, name).sum(&:last)
    end
    private_class_method :of_workers, :samples, :total

    private

    def ratios(figures, control)
      %i[private pss arenas p50 p99].to_h do |field|
        mine = figures[field]
        theirs = control[field]
        ratio = mine.fdiv(theirs).round(2) if mine && theirs&.positive?
        [:"#{field}_ratio", ratio]
      end
    end

    def thread_name = "bloat_probe-trial"

    def work_first? = false
  end
end
