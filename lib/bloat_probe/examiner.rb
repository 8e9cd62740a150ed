# frozen_string_literal: true

module BloatProbe
  # Takes moments of this process: its readings and their Diagnosis, by the verdict's
  # rules in the Rust core (crates/core/src/diagnosis.rs, where each verdict and threshold
  # is described). It adds what only Ruby knows: its object heap.
  class Examiner
    # Every threshold's default, by name, as the core declares it.
    THRESHOLDS = Native::THRESHOLDS

    # Ruby 3.1 takes its heap pages from malloc (posix_memalign), so they are part of
    # malloc's in-use bytes; Ruby 3.2+ maps them with mmap.
    RUBY_HEAP_IN_MALLOC = Gem::Version.new(RUBY_VERSION) < Gem::Version.new("3.2")

    attr_reader :thresholds

    # thresholds: any of THRESHOLDS to override; an unknown name or a bad value raises.
    def initialize(thresholds: {})
      @thresholds = Native.thresholds(thresholds)
    end

    # Reads the process now and diagnoses what it read. warm: the samples since the
    # warm-up (oldest first), which the trend is drawn through with this moment when it
    # is taken after warm_from (seconds since the epoch); boot_in_use: memory in use at the
    # process's first moment. Without them (a single reading), growth cannot be told and
    # the process's start is not known.
    def take(warm: [], warm_from: nil, boot_in_use: nil)
      samples = warm.map { |sample| [sample.time, sample.rss, sample.malloc_in_use, sample.ruby_heap] }
      ruby_heap = [ruby_heap_bytes, RUBY_HEAP_IN_MALLOC, gc_malloc_limit]
      Moment.from_h(Native.moment(ruby_heap, @thresholds, samples, warm_from&.to_f, boot_in_use))
    end

    def diagnosis
      take.diagnosis
    end

    # The rules applied to figures given, without reading the process: a Hash with a
    # Diagnosis's figure fields (allocator, rss, pss, uss, malloc_in_use, free, trimmable,
    # arena_count, arenas_holding_free, ruby_heap, ruby_gc_malloc_limit), a Trend or nil, a
    # Cgroup or nil.
    def judge(figures, trend: nil, cgroup: nil, taken_at: Time.now.to_f)
      Diagnosis.from_h(Native.judge(figures.to_h, @thresholds, trend&.to_h, cgroup&.to_h, taken_at.to_f))
    end

    private

    def ruby_heap_bytes
      GC.stat(:heap_allocated_pages) * GC::INTERNAL_CONSTANTS.fetch(:HEAP_PAGE_SIZE)
    end

    # How far what Ruby mallocs may rise before its GC runs: the young generation's limit
    # (a minor collection) or the old one's (a major), the larger.
    def gc_malloc_limit
      [GC.stat(:malloc_increase_bytes_limit), GC.stat(:oldmalloc_increase_bytes_limit)].max
    end
  end
end
