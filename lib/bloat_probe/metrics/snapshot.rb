# frozen_string_literal: true

module BloatProbe
  class Metrics
    # What one process's series are read from: one Recorder moment (its stats, memory and
    # the diagnosis of those very figures), the Trimmer if the process runs one, and the
    # attribution's entries and call durations.
    Snapshot = Struct.new(:stats, :memory, :cgroup, :diagnosis, :trimmer, :attribution, :durations, :guard,
                          :reading_errors, keyword_init: true) do
      def glibc?
        stats.glibc?
      end

      # One moment of the probe's Recorder (its latest, unless older than the diagnosis
      # interval), with the probe's Trimmer and attribution.
      def self.of(probe, moment = probe.recorder.moment)
        Snapshot.new(stats: moment.stats, memory: moment.memory, cgroup: moment.cgroup, diagnosis: moment.diagnosis,
                     trimmer: probe.trimmer, attribution: probe.attribution&.entries,
                     durations: probe.attribution&.durations, guard: probe.guard,
                     reading_errors: probe.reading_errors.counts)
      end
    end
  end
end
