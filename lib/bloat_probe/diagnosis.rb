# frozen_string_literal: true

module BloatProbe
  # Why this process holds its memory, from one set of readings: the verdict, the figures
  # it stands on, a paragraph saying what it means, and remedies, best first. An Examiner
  # takes it (BloatProbe.diagnose); see Examiner for what each verdict means.
  # trend: how memory moved since the warm-up (a Trend), nil during it.
  Diagnosis = Reading.define(
    :verdict, :allocator, :rss, :pss, :uss, :malloc_in_use, :free, :trimmable, :arena_count, :arenas_holding_free,
    :ruby_heap, :trend, :taken_at, :explanation, :remedies,
    bytes: %i[rss pss uss malloc_in_use free trimmable ruby_heap], names: %i[verdict],
    nested: { trend: [:reading, "Trend"] }
  )

  class Diagnosis
    VERDICTS = %i[arena_fragmentation allocator_retained native_growth ruby_heap_growth ruby_heap live_native
                  unmeasured healthy].freeze

    def to_s
      "#{verdict}: #{explanation}"
    end

    private

    def inspect_fields
      super.reject { |field| field.start_with?("explanation=", "remedies=") }
    end
  end
end
