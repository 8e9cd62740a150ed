# frozen_string_literal: true

module BloatProbe
  # How long calls took, counted in fixed buckets as a Prometheus histogram counts them:
  # bounded memory whatever the traffic, and quantiles that add up across workers. The
  # counting is Attribution's, done natively; this is a frozen copy, or workers' sums.
  class Durations
    # Upper bounds in seconds: Prometheus's default buckets, then +Inf.
    BOUNDS = Native::AttributionLedger::DURATION_BOUNDS.freeze

    attr_reader :counts, :sum

    def initialize(counts = Array.new(BOUNDS.size, 0), sum = 0.0)
      @counts = counts
      @sum = sum
    end

    def count
      @counts.sum
    end

    # [[bound, calls that took at most that long]], as a histogram's buckets give them.
    def cumulative
      total = 0
      BOUNDS.zip(@counts).map { |bound, calls| [bound, total += calls] }
    end

    # The duration below which `fraction` of the calls fell, interpolated inside its bucket
    # as Prometheus's histogram_quantile does; nil without calls. `cumulative`: one
    # process's buckets or several processes' summed.
    def self.quantile(cumulative, fraction)
      total = cumulative.last&.last.to_i
      return if total.zero?

      rank = fraction * total
      lower_bound = 0.0
      below = 0
      cumulative.each do |bound, calls|
        if calls >= rank
          return lower_bound if bound.infinite?

          return lower_bound + ((bound - lower_bound) * (rank - below) / (calls - below))
        end
        lower_bound = bound
        below = calls
      end
    end
  end
end
