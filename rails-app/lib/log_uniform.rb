# frozen_string_literal: true

# Sizes spread log-uniformly over a range: as many 32–64 B strings as 16–32 KiB ones,
# many small strings and a few large buffers, the shape of a web request's or a job's
# allocations. The same draw as churn's `distribution: :log_uniform` in Rust
# (crates/core/src/workload/sizes.rs), so that the Ruby workloads and the native one agree.
# rails-app's workloads and seeds, the bench's Sidekiq jobs and the tests draw from it.
class LogUniform
  attr_reader :sizes

  # sizes: a Range of positive Integers; random: a Random (seed it to repeat a run).
  def initialize(sizes, random: Random.new)
    unless sizes.is_a?(Range) && sizes.min.is_a?(Integer) && sizes.min.positive?
      raise ArgumentError, "sizes must be a Range of positive whole numbers, got #{BloatProbe.excerpt(sizes)}"
    end

    @sizes = sizes
    @low = Math.log(sizes.min)
    @high = Math.log(sizes.max + 1)
    @random = random
  end

  # One size.
  def draw
    Math.exp(@low + (@random.rand * (@high - @low))).to_i.clamp(@sizes.min, @sizes.max)
  end

  # The mean of the sizes drawn, reckoned: (max + 1 − min) ÷ ln((max + 1) ÷ min).
  def mean
    (@sizes.max + 1 - @sizes.min) / (@high - @low)
  end
end
