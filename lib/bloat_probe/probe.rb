# frozen_string_literal: true

module BloatProbe
  # What watches one process's memory, built whole by its integration (the Puma plugin,
  # BloatProbe::Sidekiq.install) and installed as BloatProbe.probe: the Recorder (history
  # and latest moment), the Attribution that the request and job middlewares fill, a
  # Trimmer and a Guard when they were asked for, and, in a Puma cluster, the Cluster its
  # workers share. #start runs its threads (a Reporter, the Guard's, the Trimmer's) in the
  # process that serves: threads do not survive fork. Metrics and the dashboard read it.
  class Probe
    attr_reader :recorder, :attribution, :trimmer, :guard, :cluster, :reporter, :reading_errors

    def initialize(recorder: Recorder.new, attribution: Attribution.new, trimmer: nil, guard: nil, cluster: nil)
      @recorder = recorder
      @attribution = attribution
      @trimmer = trimmer
      @guard = guard
      @cluster = cluster
      @reporter = nil
      @remedy = nil
      @reading_errors = ReadingErrors.new
    end

    # Starts reporting every `interval` seconds through `log`, and the Guard and the
    # Trimmer where there are some.
    def start(interval:, log:)
      @reporter = Reporter.start(interval: interval, probe: self, log: log)
      @guard&.start
      @trimmer&.start
      self
    end

    # Takes up a trial's remedy (BloatProbe::Trial) in this worker, before #start: glibc's
    # parameter from now on, or a Trimmer of its own.
    def take_up(remedy)
      @remedy = remedy
      if remedy.trim?
        @trimmer ||= Trimmer.new(interval: Trial::TRIM_INTERVAL, min_trimmable: Trial::TRIM_MIN, recorder: @recorder)
      elsif !remedy.control?
        BloatProbe.mallopt(remedy.name.to_sym, remedy.value)
      end
    end

    # Labels of this process's series: worker="N" in a Puma cluster, and remedy="…" in a trial.
    def labels
      labels = @cluster&.labels || {}
      @remedy ? labels.merge(remedy: @remedy.to_s) : labels
    end

    # Ends the threads it runs.
    def stop
      @reporter&.stop
      @trimmer&.stop
      @guard&.stop
    end
  end
end
