# frozen_string_literal: true

module BloatProbe
  # How the process's memory moved since its warm-up ended: for memory in use, the Ruby
  # heap and RSS, the rate in bytes per hour (a least-squares line through the samples)
  # and the first sample's figure (the baseline), with how many samples and seconds the
  # line stands on. A steady working set and a leak look alike in one snapshot; they
  # differ here.
  Trend = Reading.define(:samples, :seconds, :in_use_per_hour, :ruby_heap_per_hour, :rss_per_hour,
                         :baseline_in_use, :baseline_ruby_heap, :baseline_rss,
                         bytes: %i[in_use_per_hour ruby_heap_per_hour rss_per_hour baseline_in_use
                                   baseline_ruby_heap baseline_rss])

  class Trend
    # Fewer samples, or a shorter span, tell nothing yet.
    MIN_SAMPLES = 5
    MIN_SECONDS = 2.0

    # From the samples taken after the warm-up (BloatProbe::Sample), or nil while there
    # are too few to stand on.
    def self.of(samples)
      return if samples.size < MIN_SAMPLES

      seconds = samples.last.time - samples.first.time
      return if seconds < MIN_SECONDS

      rate = ->(field) { per_hour(samples.map(&:time), samples.map { |sample| sample[field] }) }
      new(samples.size, seconds, rate.call(:malloc_in_use), rate.call(:ruby_heap), rate.call(:rss),
          samples.first.malloc_in_use, samples.first.ruby_heap, samples.first.rss)
    end

    # The slope of the least-squares line through (time, value), per hour; nil where a
    # value is missing (an allocator that does not say what is in use).
    def self.per_hour(times, values)
      return if values.any?(&:nil?)

      mean_t = times.sum / times.size
      mean_v = values.sum.to_f / values.size
      spread = times.sum { |t| (t - mean_t)**2 }
      return 0.0 if spread.zero?

      times.zip(values).sum { |t, v| (t - mean_t) * (v - mean_v) } / spread * 3600
    end

    # Growth over the span the line covers, in bytes.
    def grown(field)
      rate = public_send(:"#{field}_per_hour")
      rate && rate * seconds / 3600
    end
  end
end
