# frozen_string_literal: true

module BloatProbe
  # How long calls took, counted in fixed buckets as a Prometheus histogram counts them:
  # bounded memory whatever the traffic, and quantiles that add up across workers. Not
  # thread-safe: its owner (Attribution) adds under its own lock.
  class Durations
    # Upper bounds in seconds: Prometheus's default buckets, then +Inf.
    BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, Float::INFINITY].freeze

    attr_reader :counts, :sum

    def initialize(counts = Array.new(BOUNDS.size, 0), sum = 0.0)
      @counts = counts
      @sum = sum
    end

    def add(seconds)
      @counts[BOUNDS.index { |bound| seconds <= bound }] += 1
      @sum += seconds
    end

    def count
      @counts.sum
    end

    def copy
      Durations.new(@counts.dup, @sum).freeze
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
