# frozen_string_literal: true

module BloatProbe
  # How many times each reading failed in this process (a ReadingError's #reading), for
  # bloat_probe_reading_errors_total: every reading is there from boot at 0. Thread-safe.
  class ReadingErrors
    # A moment's readings (the native core's), the cluster's shared directory, and the
    # wall clock (Recorder#clock_step!).
    READINGS = [*Native::READINGS, "cluster", "clock"].freeze

    def initialize
      @counts = READINGS.to_h { |reading| [reading, 0] }
      @lock = Mutex.new
    end

    # Counts `error` where it is a ReadingError; the reading's name, or nil for any other.
    def count(error)
      reading = error.is_a?(ReadingError) ? error.reading : nil
      return unless @counts.key?(reading)

      @lock.synchronize { @counts[reading] += 1 }
      reading
    end

    def counts
      @lock.synchronize { @counts.dup }
    end
  end
end
