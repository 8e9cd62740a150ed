# frozen_string_literal: true

module BloatProbe
  # Takes the readings and applies its thresholds to them: a Diagnosis.
  #
  # Verdicts, tried in this order:
  # :arena_fragmentation  glibc holds free memory (resident, not handed back) of at least
  #                       min_bytes and free_share of RSS, spread over at least
  #                       spread_arenas arenas that each hold arena_free_bytes or more.
  # :allocator_retained   the allocator holds as much free memory, but not spread that way:
  #                       glibc in one or two arenas, or jemalloc's dirty and muzzy pages
  #                       (resident − allocated).
  # :native_growth        since the warm-up, memory in use has grown at growth_per_hour or
  #                       more, by min_growth bytes at least: a leak, or a cache without a
  #                       bound.
  # :ruby_heap_growth     the same for Ruby's object heap.
  # :ruby_heap            Ruby's object heap (GC.stat pages) is min_bytes and bulk_share of
  #                       RSS or more.
  # :live_native          memory malloc'd and in use is min_bytes and bulk_share of RSS or
  #                       more, and the warm-up has not yet told whether it is steady: big
  #                       buffers, Ruby strings and arrays (their contents live outside the
  #                       object heap), or a leak. Once the trend shows it steady, the
  #                       same process is :healthy, "a steady working set".
  # :unmeasured           tcmalloc or mimalloc: bloat_probe cannot read what they hold free.
  # :healthy              none of these.
  #
  # The default thresholds come from `rake bench` (docs/verdict.md): under glibc's
  # defaults the web mix and the Sidekiq jobs leave about 90% of RSS free, spread over all
  # 16 arenas with tens of MiB each; MALLOC_ARENA_MAX=2 leaves half of a far smaller RSS
  # free in its two arenas; a trimmed glibc, or jemalloc after its decay, little that is
  # still resident. A process under 64 MiB of any of these is healthy.
  class Examiner
    THRESHOLDS = {
      min_bytes: 64 << 20,
      free_share: 0.25,
      arena_free_bytes: 8 << 20,
      spread_arenas: 3,
      bulk_share: 0.5,
      growth_per_hour: 64 << 20,
      min_growth: 16 << 20
    }.freeze

    # Ruby 3.1 takes its heap pages from malloc (posix_memalign), so they are part of
    # malloc's in-use bytes; Ruby 3.2+ maps them with mmap.
    RUBY_HEAP_IN_MALLOC = Gem::Version.new(RUBY_VERSION) < Gem::Version.new("3.2")

    # What a verdict stands on, worked out from the readings: nil where the allocator
    # cannot tell (glibc's spread and trim estimate, under jemalloc).
    Figures = Struct.new(:malloc_in_use, :free, :trimmable, :arenas_holding_free, :ruby_heap, keyword_init: true)

    # The thresholds with overrides applied, checked: an unknown name or a bad value raises.
    def self.check_thresholds(overrides)
      raise TypeError, "thresholds must be a Hash, got #{BloatProbe.excerpt(overrides)}" unless overrides.is_a?(Hash)

      overrides.each do |name, value|
        unless THRESHOLDS.key?(name)
          raise ArgumentError, "unknown threshold #{name.inspect}; known: #{THRESHOLDS.keys.join(", ")}"
        end

        share = name.to_s.end_with?("_share")
        BloatProbe.check_number("threshold #{name}", value, share ? (0.0..1.0) : (1..(1 << 50)),
                                share ? Numeric : Integer)
      end
      THRESHOLDS.merge(overrides).freeze
    end

    attr_reader :thresholds

    # thresholds: any of THRESHOLDS to override; an unknown name or a bad value raises.
    def initialize(thresholds: {})
      @thresholds = self.class.check_thresholds(thresholds)
    end

    # From fresh readings, or from the ones given (the dashboard shows the diagnosis of the
    # very readings it shows): memory must have been read with detail: true. trend: the
    # Recorder's, since the warm-up; without one, growth cannot be told from a snapshot.
    def diagnosis(stats: BloatProbe.arena_stats, memory: BloatProbe.memory(detail: true),
                  figures: figures(stats, memory), trend: nil, cgroup: BloatProbe.cgroup)
      verdict = verdict_for(figures, memory.rss, trend)
      Diagnosis.from_h(
        verdict: verdict, allocator: "#{stats.allocator} #{stats.allocator_version}", rss: memory.rss,
        pss: memory.pss, uss: memory.uss, **figures.to_h, arena_count: stats.arena_count, trend: trend,
        taken_at: Time.now.to_f, explanation: Advice.explanation(verdict, figures, memory.rss, thresholds, trend),
        remedies: Advice.remedies(verdict, figures, stats, cgroup)
      )
    end

    # What a verdict stands on, from the readings. Under glibc the arenas' figures;
    # elsewhere only what the allocator tells (jemalloc's, or none).
    def figures(stats, memory)
      ruby_heap = ruby_heap_bytes
      figures = if stats.glibc?
                  glibc_figures(stats, memory)
                else
                  { malloc_in_use: stats.malloc_in_use, free: stats.malloc_free }
                end
      in_use = figures[:malloc_in_use]
      in_use -= ruby_heap if RUBY_HEAP_IN_MALLOC && in_use
      Figures.new(trimmable: nil, arenas_holding_free: nil, **figures, malloc_in_use: in_use, ruby_heap: ruby_heap)
    end

    # Free chunks count as free even where malloc_trim or glibc already gave their pages
    # back, so what is free and still resident is at most the arenas' resident bytes
    # minus what is in use.
    def glibc_figures(stats, memory)
      resident_free = [memory.arena_resident - stats.in_use, 0].max
      {
        malloc_in_use: stats.malloc_in_use,
        free: [stats.free, resident_free].min,
        trimmable: [stats.arenas.sum(&:trimmable), resident_free].min,
        arenas_holding_free: stats.arenas.count { |arena| arena.free >= thresholds[:arena_free_bytes] }
      }
    end

    def ruby_heap_bytes
      GC.stat(:heap_allocated_pages) * GC::INTERNAL_CONSTANTS.fetch(:HEAP_PAGE_SIZE)
    end

    def verdict_for(figures, rss, trend)
      free = figures.free
      if free && significant?(free, :free_share, rss)
        spread = figures.arenas_holding_free
        return spread && spread >= thresholds[:spread_arenas] ? :arena_fragmentation : :allocator_retained
      end
      return :native_growth if growing?(trend, :in_use)
      return :ruby_heap_growth if growing?(trend, :ruby_heap)
      return :ruby_heap if significant?(figures.ruby_heap, :bulk_share, rss)
      return :unmeasured if free.nil?
      # Large and steady since the warm-up is a working set, not a finding.
      return :live_native if trend.nil? && significant?(figures.malloc_in_use, :bulk_share, rss)

      :healthy
    end

    # Rising at growth_per_hour or faster, and by min_growth at least over the trend's span.
    def growing?(trend, field)
      rate = trend&.public_send(:"#{field}_per_hour")
      return false if rate.nil?

      rate >= thresholds[:growth_per_hour] && trend.grown(field) >= thresholds[:min_growth]
    end

    # At least min_bytes, and at least that share of RSS: a small process is healthy
    # whatever its proportions.
    def significant?(bytes, share, rss)
      bytes >= thresholds[:min_bytes] && bytes >= thresholds[share] * rss
    end
  end
end
