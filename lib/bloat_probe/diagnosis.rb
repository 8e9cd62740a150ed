# frozen_string_literal: true

module BloatProbe
  # Why this process holds its memory, from one moment's readings: the verdict, the figures
  # it stands on, a paragraph saying what it means, and remedies, best first. Its fields
  # and its rules are the Rust core's (crates/core/src/diagnosis.rs).
  # trend: how memory moved since the warm-up (a Trend), nil during it.
  # How memory moved since the warm-up (crates/core/src/trend.rs).
  class Trend
    # Fewer samples, or a shorter span, tell nothing yet.
    MIN_SAMPLES = Native::TREND_MIN_SAMPLES
    MIN_SECONDS = Native::TREND_MIN_SECONDS
  end

  class Diagnosis
    VERDICTS = Native::VERDICTS

    # Memory the allocator holds free, which a trim (glibc) or a purge (jemalloc) gives
    # back.
    def freeable?
      Native::FREEABLE_VERDICTS.include?(verdict)
    end

    def to_s
      "#{verdict}: #{explanation}"
    end

    private

    def inspect_fields
      super.reject { |field| field.start_with?("explanation=", "remedies=") }
    end
  end
end
