# frozen_string_literal: true

# Ruby-side allocation as a request does it: strings and arrays of varied size, built,
# used and dropped, with a few kept in a bounded in-process cache as real apps keep
# fragments, so that long-lived chunks sit between freed ones in every thread's arena.
class StringWorkload
  CACHE_ENTRIES = 2_000
  CACHE = []
  CACHE_LOCK = Mutex.new

  def self.cached_entries
    CACHE_LOCK.synchronize { CACHE.size }
  end

  def initialize(count:, sizes:, keep:, seed:)
    @count = count
    @sizes = sizes
    @keep = keep
    @random = Random.new(seed)
  end

  # Returns the bytes built and the number of strings kept.
  def run
    built = Array.new(@count) { "x" * log_uniform_size }
    kept = built.select { @random.rand < @keep }
    remember(kept)
    { strings: built.size, bytes: built.sum(&:bytesize), kept: kept.size }
  end

  private

  # Many small strings, a few large buffers (as many between 32 and 64 B as between 16
  # and 32 KiB), the shape of a web request's allocations.
  def log_uniform_size
    low = Math.log(@sizes.min)
    high = Math.log(@sizes.max + 1)
    Math.exp(low + @random.rand * (high - low)).to_i.clamp(@sizes.min, @sizes.max)
  end

  def remember(strings)
    CACHE_LOCK.synchronize do
      CACHE.concat(strings)
      CACHE.shift(CACHE.size - CACHE_ENTRIES) if CACHE.size > CACHE_ENTRIES
    end
  end
end
