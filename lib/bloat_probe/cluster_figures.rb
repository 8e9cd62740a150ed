# frozen_string_literal: true

module BloatProbe
  # A Puma cluster's figures from the series its processes publish (Cluster#peer_series):
  # per worker for the dashboard's rows, per remedy for a trial's comparison. Memory and
  # arenas are per worker (a group's mean); requests and call durations add up.
  module ClusterFigures
    Figures = Struct.new(:workers, :requests, :shared, :private, :pss, :arenas, :p50, :p99)

    # worker label ("0", "1", …, "master") => Figures.
    def self.by_worker(series)
      grouped(series, :worker)
    end

    # remedy label ("control", "arena_max=2", …) => Figures of the workers trying it.
    def self.by_remedy(series)
      grouped(series, :remedy)
    end

    def self.grouped(series, label)
      processes = series.group_by { |_name, labels, _value| labels[:worker] }.except(nil).values
      processes.group_by { |samples| samples.first[1][label] }.except(nil)
               .transform_values { |members| of_processes(members) }
    end

    def self.of_processes(processes)
      mean = ->(name) { processes.sum { |samples| total(samples, name) } / processes.size }
      buckets = processes.flat_map { |samples| samples_of(samples, "bloat_probe_call_duration_seconds_bucket") }
                         .group_by { |labels, _| labels[:le] == "+Inf" ? Float::INFINITY : Float(labels[:le]) }
                         .map { |bound, samples| [bound, samples.sum(&:last)] }.sort_by(&:first)
      Figures.new(processes.size, processes.sum { |samples| total(samples, "bloat_probe_endpoint_calls_total") },
                  mean.call("bloat_probe_shared_bytes"), mean.call("bloat_probe_private_bytes"),
                  mean.call("bloat_probe_proportional_memory_bytes"),
                  processes.sum { |samples| total(samples, "bloat_probe_malloc_arenas") }.fdiv(processes.size),
                  Durations.quantile(buckets, 0.5), Durations.quantile(buckets, 0.99))
    end

    def self.samples_of(samples, name)
      samples.filter_map { |sample_name, labels, value| [labels, value] if sample_name == name }
    end

    def self.total(samples, name)
      samples_of(samples, name).sum(&:last)
    end
    private_class_method :grouped, :of_processes, :samples_of, :total
  end
end
