# frozen_string_literal: true

module BloatProbe
  # What watches one process's memory: the Recorder (history and latest moment), the
  # Reporter's thread, a Trimmer and a Guard when they were asked for, the Attribution that
  # the request and job middlewares fill, and, in a Puma cluster, the Cluster its workers
  # share. The Puma plugin and the Sidekiq integration fill in the parts they run; Metrics
  # and the dashboard are given the probe and read its parts.
  class Probe
    attr_accessor :recorder, :reporter, :trimmer, :cluster, :attribution, :guard

    def initialize(recorder: Recorder.new, reporter: nil, trimmer: nil, guard: nil, cluster: nil,
                   attribution: Attribution.new)
      @recorder = recorder
      @reporter = reporter
      @trimmer = trimmer
      @guard = guard
      @cluster = cluster
      @attribution = attribution
    end

    # Labels of this process's series: worker="N" in a Puma cluster.
    def labels
      @cluster&.labels || {}
    end

    # Ends the threads it runs.
    def stop
      @reporter&.stop
      @trimmer&.stop
      @guard&.stop
    end
  end
end
