# frozen_string_literal: true

# bloat_probe: see what glibc malloc's arenas do inside a Ruby process, and make them
# do it on purpose. Every size is in bytes.
module BloatProbe
  class Error < StandardError; end
  # A glibc-only reading was asked for while another allocator serves the process.
  class NotGlibcError < Error; end
  # jemalloc_stats was asked for, but jemalloc is not preloaded.
  class NotJemallocError < Error; end
  # Churn would hold more than BloatProbe.retain_limit bytes.
  class RetainLimitError < RangeError; end

  # A reading that could not be taken; #reading names it (ReadingErrors::READINGS).
  class ReadingError < Error
    attr_reader :reading

    def initialize(message = nil, reading: nil)
      super(message)
      @reading = reading
    end
  end
end

require_relative "bloat_probe/version"
require_relative "bloat_probe/setting"
# The platform gem carries the extension built for each Ruby minor version it supports
# (lib/bloat_probe/3.1/, 3.3/); the source gem, the one cargo built at install.
precompiled = Dir[File.join(__dir__, "bloat_probe", "[0-9]*.[0-9]*")]
BloatProbe::PRECOMPILED_FOR = precompiled.map { |dir| File.basename(dir) }.sort.freeze
if BloatProbe::PRECOMPILED_FOR.any?
  ruby_minor = RUBY_VERSION[/\A\d+\.\d+/]
  unless BloatProbe::PRECOMPILED_FOR.include?(ruby_minor)
    raise LoadError, "bloat_probe #{BloatProbe::VERSION} carries its extension for Ruby " \
                     "#{BloatProbe::PRECOMPILED_FOR.join(" and ")}, not #{RUBY_VERSION}: install the source gem, " \
                     "which builds it with cargo (gem install bloat_probe --platform ruby)"
  end
  require_relative "bloat_probe/#{ruby_minor}/bloat_probe"
else
  begin
    # `rake compile` builds it here, as magnus gems do.
    require_relative "bloat_probe/bloat_probe"
  rescue LoadError
    # RubyGems' cargo builder installs it at the root of the gem's extension directory.
    require "bloat_probe.so"
  end
end
require_relative "bloat_probe/format"
require_relative "bloat_probe/log_line"
require_relative "bloat_probe/readings"
require_relative "bloat_probe/periodic"
require_relative "bloat_probe/trimmer"
require_relative "bloat_probe/diagnosis"
require_relative "bloat_probe/moment"
require_relative "bloat_probe/examiner"
require_relative "bloat_probe/recorder"
require_relative "bloat_probe/reading_errors"
require_relative "bloat_probe/durations"
require_relative "bloat_probe/attribution"
require_relative "bloat_probe/probe"
require_relative "bloat_probe/footprint"
require_relative "bloat_probe/trial"
require_relative "bloat_probe/cluster_figures"
require_relative "bloat_probe/trial_report"
require_relative "bloat_probe/metrics"
require_relative "bloat_probe/metrics/snapshot"
require_relative "bloat_probe/metrics/families"
require_relative "bloat_probe/metrics/exposition"
require_relative "bloat_probe/cluster"
require_relative "bloat_probe/reporter"
require_relative "bloat_probe/guard"
require_relative "bloat_probe/guard/budget"
require_relative "bloat_probe/guard/remedies"

module BloatProbe
  class << self
    # Every field of glibc's mallinfo2(), summed over all arenas.
    def mallinfo
      Mallinfo.from_h(Native.mallinfo)
    end

    # malloc_info parsed: one Arena per glibc arena and the process totals. Under
    # jemalloc, tcmalloc or mimalloc it says so (#glibc? is false) instead.
    def arena_stats
      ArenaStats.from_h(Native.arena_stats)
    end

    # What glibc's malloc_stats() prints, as text and parsed; fd 2 is not touched.
    def malloc_stats
      MallocStats.from_h(Native.malloc_stats)
    end

    # RSS and anonymous memory from /proc/self/statm: cheap enough for every request.
    # detail: true adds PSS, USS and swap (/proc/self/smaps_rollup), the count of 64 MiB
    # arena heap mappings and the resident bytes of glibc's arenas (/proc/self/smaps).
    def memory(detail: false)
      Memory.from_a(Native.memory(detail))
    end

    # Another process's memory, as memory(detail: true) reads one's own but without the
    # arena heaps: RSS, PSS, USS, swap, shared and private. BloatProbe::Error when it is
    # gone or not ours to read.
    def memory_of(pid)
      Memory.from_a(Native.memory_of(pid))
    end

    # The malloc serving this process, detected at run time.
    def allocator
      Allocator.from_h(Native.allocator)
    end

    # Why this process holds its memory: a Diagnosis with a verdict, the readings it
    # used, an explanation and remedies, ranked (the rules: crates/core/src/diagnosis.rs);
    # thresholds overrides any of Examiner::THRESHOLDS.
    def diagnose(thresholds: {})
      Examiner.new(thresholds: thresholds).diagnosis
    end

    # This process's Probe (Recorder, Attribution, Reporter, Trimmer, Guard, Cluster), for
    # Metrics, the middlewares and the dashboard: the one its integration installed (the
    # Puma plugin, BloatProbe::Sidekiq.install), else one of the defaults, made at load.
    attr_accessor :probe

    # Statistics of a preloaded jemalloc (LD_PRELOAD=libjemalloc.so.2).
    def jemalloc_stats
      JemallocStats.from_h(Native.jemalloc_stats)
    end

    # Statistics of the jemalloc bundled in this gem, which churn(allocator: :jemalloc) uses.
    def bundled_jemalloc_stats
      JemallocStats.from_h(Native.bundled_jemalloc_stats)
    end

    # The glibc arena this thread allocates from: its index (malloc_info's), current and
    # highest system bytes and attached threads, read in about a microsecond from glibc's
    # own structures once their layout has been checked against malloc_info. Where that
    # cannot be done truthfully, available is false and reason says why.
    def thread_arena
      ThreadArena.from_h(Native.thread_arena)
    end

    # The container this process runs in: its cgroup's memory limit and usage (what an
    # OOM kill is decided on), anon and file bytes, CPU quota and cpuset, and glibc's arena
    # cap, which glibc sizes from the host's CPUs, not the container's. nil where there is
    # no limit, or no glibc.
    def cgroup
      Cgroup.from_h(Native.cgroup)
    end

    # Where the memory went, per endpoint or job, as the middlewares recorded it
    # (BloatProbe::Attribution::Middleware, and BloatProbe::Sidekiq's): the largest first.
    def attribution
      probe.attribution.entries
    end

    # Which threads were last seen on which arena, running which endpoint or job.
    def thread_arenas
      probe.attribution.thread_arenas
    end

    # Purges every arena of a preloaded jemalloc now (its freed pages would otherwise wait
    # for their decay); NotJemallocError under another allocator.
    def jemalloc_purge
      Native.jemalloc_purge
    end

    # malloc_trim(pad): hands free pages of every arena back to the system.
    def trim(pad = 0)
      TrimResult.from_h(Native.trim(pad))
    end

    # What a Puma master can do just before it forks, so that its workers start from as
    # little memory as it can give them to share: Ruby 3.3's Process.warmup (a full GC,
    # compaction, promotion to the old generation, freeing empty heap pages, malloc_trim);
    # before 3.3, the part of that Ruby can do: a full GC, a compaction, and a trim under
    # glibc. Returns what it ran, in words.
    def prepare_for_fork
      return "Process.warmup" if Process.respond_to?(:warmup) && Process.warmup

      GC.start(full_mark: true, immediate_sweep: true)
      GC.compact if GC.respond_to?(:compact)
      return "GC.start, GC.compact" unless allocator.glibc?

      trim
      "GC.start, GC.compact, malloc_trim"
    end

    # Changes one of glibc's malloc parameters in this process from now on (mallopt):
    # :arena_max, :mmap_threshold or :trim_threshold (MALLOC_PARAMETERS gives each one's
    # range). Arenas and blocks that exist stay as they are.
    def mallopt(parameter, value)
      Native.mallopt(parameter, value)
    end

    # Allocates in native code with the GVL released. See README for the options.
    def churn(**options)
      ChurnResult.from_h(Native.churn(**options))
    end

    # Each churn option's allowed range (count, size, window, threads, retain) and the
    # default sizes, as the native layer checks them.
    def churn_limits
      Native::CHURN_LIMITS
    end

    # The most a churn call with these options can hold at once: its window's blocks and
    # the ones it keeps, every one at its largest. Raises as churn would for an option out
    # of its bounds; the retain limit is left to churn itself.
    def churn_worst_case_bytes(**options)
      Native.churn_worst_case_bytes(**options)
    end

    # The most bytes churn may hold at once, process-wide (default 2 GiB).
    def retain_limit
      Native.retain_limit
    end

    def retain_limit=(bytes)
      Native.retain_limit = bytes
    end

    # Bytes that live Retained objects hold now.
    def retained_bytes
      Native.retained_bytes
    end
  end
end

BloatProbe.probe = BloatProbe::Probe.new
