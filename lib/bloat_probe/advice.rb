# frozen_string_literal: true

module BloatProbe
  # The words of a diagnosis: what the verdict means here, and what to do, best first.
  # The one figure given for a remedy is the trim estimate, which the tests check against
  # what malloc_trim then releases; what the others save, per workload, is in
  # docs/bench.md.
  module Advice
    module_function

    def explanation(verdict, figures, rss, thresholds, trend = nil)
      share = ->(bytes) { "#{Format.bytes(bytes)} (#{(100.0 * bytes / rss).round}% of RSS #{Format.bytes(rss)})" }
      case verdict
      when :native_growth, :ruby_heap_growth
        growth(verdict, trend)
      when :arena_fragmentation
        "glibc holds #{share.call(figures.free)} free inside its arenas, #{figures.arenas_holding_free} of " \
          "which hold #{Format.bytes(thresholds[:arena_free_bytes])} or more each: memory that " \
          "threads freed but that stays with each thread's arena, so RSS follows the sum of every arena's " \
          "high-water mark. The allocator, not a leak, is the cause."
      when :allocator_retained
        "The allocator holds #{share.call(figures.free)} that the program freed but the allocator has not " \
          "given back to the system yet. This is not a leak; the allocator's settings decide when it returns."
      when :ruby_heap
        "Ruby's object heap takes #{share.call(figures.ruby_heap)}: live objects, or pages the GC keeps for " \
          "them. Changing the allocator will not shrink it."
      when :live_native
        "Memory malloc'd and still in use takes #{share.call(figures.malloc_in_use)}: big buffers, the " \
          "contents of Ruby strings and arrays, or garbage the GC has not collected yet. The allocator is not " \
          "wasting it; whether it is a steady working set or growth, the trend after the warm-up will tell."
      when :unmeasured
        "This process runs on an allocator whose free memory bloat_probe cannot read (tcmalloc or mimalloc); " \
          "only the Ruby heap (#{Format.bytes(figures.ruby_heap)}) was measured."
      else
        healthy(figures, thresholds, trend)
      end
    end

    def growth(verdict, trend)
      field, what = verdict == :native_growth ? [:in_use, "Memory in use"] : [:ruby_heap, "Ruby's object heap"]
      "#{what} has grown by #{Format.bytes(trend.grown(field))} in the last #{trend.seconds.round} s since the " \
        "warm-up, #{Format.bytes(trend.public_send(:"#{field}_per_hour"))} an hour (a line through " \
        "#{trend.samples} samples): something keeps what it allocates. Changing the allocator will not stop it."
    end

    def healthy(figures, thresholds, trend)
      steady = trend && figures.malloc_in_use &&
               "A steady working set of #{Format.bytes(figures.malloc_in_use)} in use: since the warm-up it has " \
               "moved #{Format.bytes(trend.in_use_per_hour)} an hour (#{trend.samples} samples). "
      "#{steady}No bloat: the allocator holds less than #{Format.bytes(thresholds[:min_bytes])} or " \
        "#{(100 * thresholds[:free_share]).round}% of RSS free, and nothing grows."
    end

    def remedies(verdict, figures, stats, cgroup = nil)
      arena_remedies(verdict, figures, stats).then do |list|
        cap = arena_cap_note(cgroup) if %i[arena_fragmentation allocator_retained].include?(verdict) && stats.glibc?
        cap ? [cap, *list] : list
      end
    end

    # glibc's cap counts the host's CPUs: a one-CPU container on a 64-core host may make
    # 512 arenas.
    def arena_cap_note(cgroup)
      cpus = cgroup&.cpu_quota&.ceil || cgroup&.cpuset_cpus
      cap = cgroup&.arena_cap
      return unless cpus && cap && cap > 8 * cpus

      "glibc allows #{cap} arenas here (8 × the host's #{cgroup.online_cpus} CPUs), while this container has " \
        "#{cpus} CPU#{"s" if cpus > 1}: MALLOC_ARENA_MAX=#{8 * cpus} sizes the cap to the container (2 caps it " \
        "further)"
    end

    def arena_remedies(verdict, figures, stats)
      trim = figures.trimmable &&
             "malloc_trim(0) would hand back about #{Format.bytes(figures.trimmable)} now (estimated from " \
             "malloc_info's free chunks); BloatProbe::Trimmer.start(interval: 60) does it periodically"
      case verdict
      when :arena_fragmentation
        ["MALLOC_ARENA_MAX=2 in the environment: two arenas for all threads",
         "jemalloc (LD_PRELOAD=libjemalloc.so.2) with MALLOC_CONF=background_thread:true",
         trim].compact
      when :allocator_retained
        if stats.jemalloc
          ["MALLOC_CONF=background_thread:true purges freed pages off the request threads, even when idle",
           "MALLOC_CONF=dirty_decay_ms:1000 returns them sooner (the default is 10 s)"]
        else
          [trim, "fewer arenas hold less: MALLOC_ARENA_MAX=2 if it is not set"].compact
        end
      when :native_growth
        ["BloatProbe.attribution names the endpoints and jobs that raised memory; look at what they keep " \
         "(caches without a bound, class-level collections, C extensions' buffers)",
         "ObjectSpace.memsize_of_all(String) and a heap dump now and later, for strings and arrays that accumulate"]
      when :ruby_heap_growth
        ["ObjectSpace.dump_all(output: File.open(\"heap.json\", \"w\")) now and later, and compare what grows"]
      when :ruby_heap
        ["ObjectSpace.dump_all(output: File.open(\"heap.json\", \"w\")) and compare two dumps for what grows",
         "GC.compact (Ruby 2.7+) frees pages that hold few live objects"]
      when :live_native
        ["find what holds the memory: GC.start, then diagnose again (garbage not yet collected); " \
         "ObjectSpace.memsize_of_all(String) and a heap dump for Ruby's strings and arrays; if those are small, " \
         "a C extension's buffers or leak"]
      when :unmeasured
        ["run once under glibc or jemalloc (LD_PRELOAD=libjemalloc.so.2) to measure what the allocator holds"]
      else
        []
      end
    end
  end
end
