# frozen_string_literal: true

module Soak
  # Seconds on the clock that no time adjustment moves, for deadlines and intervals.
  module Clock
    private

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
