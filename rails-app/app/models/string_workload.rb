# frozen_string_literal: true

# Ruby-side allocation as a request does it: strings of varied size, built, used and
# dropped, with a few kept in a bounded in-process cache as real apps keep fragments, so
# that long-lived chunks sit between freed ones in every thread's arena.
class StringWorkload
  CACHE_ENTRIES = 2_000
  CACHE_BYTES = 64 << 20
  CACHE = BoundedCache.new(entries: CACHE_ENTRIES, bytes: CACHE_BYTES, &:bytesize)

  # How worst_case_bytes is reckoned, for the budget's message.
  WORST_CASE = "count × max_size"

  def initialize(count:, sizes:, keep:, seed:)
    @count = count
    @sizes = sizes
    @keep = keep
    @random = Random.new(seed)
    @size = LogUniform.new(sizes, random: @random)
  end

  # The most this request can hold at once: every string at its largest.
  def worst_case_bytes
    @count * @sizes.max
  end

  # Returns the bytes built and the number of strings kept.
  def run
    built = Array.new(@count) { "x" * @size.draw }
    kept, dropped = built.partition { @random.rand < @keep }
    bytes = built.sum(&:bytesize)
    # Freed now, not at some later GC: the request's reservation ends with it.
    dropped.each(&:clear)
    # An evicted string was only the cache's: its buffer is freed at once.
    CACHE.push(kept).each(&:clear)
    { strings: built.size, bytes: bytes, kept: kept.size }
  end
end
