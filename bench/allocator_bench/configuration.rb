# frozen_string_literal: true

require "bloat_probe"

module AllocatorBench
  # One allocator set-up of the server: a name, the environment that selects it, and
  # what it needs installed.
  LIBRARY_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"].freeze

  Configuration = Struct.new(:name, :env, :library, :package, :summary, :cluster_only, keyword_init: true)

  # How a configuration is drawn, the same in every chart, the report and the README: a
  # colour of its own (Okabe and Ito's colour-blind-safe eight, then Paul Tol's muted
  # set), and a dash and a marker, so that no two are told apart by colour alone.
  Look = Struct.new(:colour, :dash, :marker)

  class Look
    SOLID = ""
    DASHED = "7 4"
    DOTTED = "2 3"
    DASH_DOT = "8 3 2 3"
    MARKERS = %i[circle square triangle diamond triangle_down cross].freeze
    # For a configuration that has no look of its own (a test's): greys, told apart by dash
    # and marker, picked by the name so that it is the same in every chart.
    SPARE_COLOURS = %w[#555555 #888888 #333333].freeze

    def self.spare(name)
      index = name.each_byte.sum
      new(SPARE_COLOURS[index % SPARE_COLOURS.size], [DASH_DOT, DASHED, DOTTED][index % 3],
          MARKERS[index % MARKERS.size])
    end
  end

  class Configuration
    # The six a default run compares, then the settings people copy (CONFIGS=all); in
    # cluster mode (WORKERS), warmup too.
    DEFAULT = %w[glibc arena2 jemalloc trim tcmalloc mimalloc].freeze
    CLUSTER_DEFAULT = [*DEFAULT, "warmup"].freeze

    def self.all
      [
        new(name: "glibc", env: {}, summary: "glibc malloc, default arenas (8 × cores)"),
        new(name: "arena2", env: { "MALLOC_ARENA_MAX" => "2" },
            summary: "glibc with MALLOC_ARENA_MAX=2 (Heroku's default for Ruby since 2019; Sidekiq's wiki)"),
        new(name: "jemalloc", library: "libjemalloc.so.2", package: "libjemalloc2",
            summary: "jemalloc 5 via LD_PRELOAD with its defaults, as Rails 7.2+'s generated Dockerfile preloads it"),
        new(name: "trim", env: { "BLOAT_PROBE_TRIM_INTERVAL" => "1", "BLOAT_PROBE_TRIM_MIN" => "64M" },
            summary: "glibc, BloatProbe::Trimmer looking every second (up to #{BloatProbe::Trimmer::MAX_WAIT} s " \
                     "apart while its trims' memory comes straight back), trimming only when a trim would return " \
                     "64 MiB or more (published runs before 2026-11-30's #19 trimmed every second: trim-1s)"),
        new(name: "tcmalloc", library: "libtcmalloc_minimal.so.4", package: "libtcmalloc-minimal4",
            summary: "tcmalloc (gperftools) via LD_PRELOAD"),
        new(name: "mimalloc", library: %w[libmimalloc.so.3 libmimalloc.so.2], package: "libmimalloc3 or libmimalloc2.0",
            summary: "mimalloc via LD_PRELOAD (2.0 on Debian 12, 3.0 on Debian 13)"),
        new(name: "jemalloc-tuned", library: "libjemalloc.so.2", package: "libjemalloc2",
            env: { "MALLOC_CONF" => "dirty_decay_ms:1000,narenas:2,background_thread:true" },
            summary: "jemalloc, MALLOC_CONF=dirty_decay_ms:1000,narenas:2,background_thread:true " \
                     "(a widely copied Dockerfile generator's setting, 2023)"),
        new(name: "jemalloc-bg", library: "libjemalloc.so.2", package: "libjemalloc2",
            env: { "MALLOC_CONF" => "background_thread:true" },
            summary: "jemalloc, MALLOC_CONF=background_thread:true alone (purges without waiting for activity)"),
        new(name: "arena4", env: { "MALLOC_ARENA_MAX" => "4" }, summary: "glibc with MALLOC_ARENA_MAX=4"),
        new(name: "yjit", env: { "RUBY_YJIT_ENABLE" => "1" },
            summary: "glibc's defaults with Ruby's YJIT on (RUBY_YJIT_ENABLE=1): its machine code and metadata " \
                     "are memory of their own"),
        new(name: "mmap-fixed", env: { "MALLOC_MMAP_THRESHOLD_" => "131072" },
            summary: "glibc with MALLOC_MMAP_THRESHOLD_=131072: the mmap threshold fixed at 128 KiB, " \
                     "not raised by large frees"),
        new(name: "trim-1s", env: { "BLOAT_PROBE_TRIM_INTERVAL" => "1" },
            summary: "glibc, malloc_trim(0) every second whatever it returns (the blind Trimmer)"),
        new(name: "warmup", env: { "BLOAT_PROBE_COMPACT_BEFORE_FORK" => "1" }, cluster_only: true,
            summary: "glibc's defaults; the Puma master runs BloatProbe.prepare_for_fork before it forks " \
                     "(Process.warmup on Ruby 3.3; a full GC, GC.compact and malloc_trim before): cluster mode only"),
        new(name: "no-probe", env: { "BLOAT_PROBE_ATTRIBUTION" => "0" },
            summary: "glibc's defaults without the probe's attribution middleware in requests or jobs: " \
                     "beside glibc, what the middleware costs")
      ]
    end

    # CONFIGS=glibc,jemalloc picks some, in the order given; unset, the default six (and
    # warmup in cluster mode); CONFIGS=all, every one.
    def self.select(names, cluster: false)
      default = cluster ? CLUSTER_DEFAULT : DEFAULT
      return all.select { |config| default.include?(config.name) } if names.nil? || names.strip.empty?
      return all if names.strip == "all"

      by_name = all.to_h { |config| [config.name, config] }
      chosen = names.split(",").map(&:strip).reject(&:empty?).map do |name|
        by_name.fetch(name) do
          raise ArgumentError, "unknown configuration #{name.inspect}; known: #{by_name.keys.join(", ")}"
        end
      end
      if chosen.empty?
        raise ArgumentError,
              "CONFIGS names no configuration, got #{names.inspect}; known: #{by_name.keys.join(", ")}"
      end

      chosen
    end

    # library: one file name, or several (the first found wins: Debian 13 has mimalloc's
    # .so.3 where Debian 12 has its .so.2).
    def library_path
      return nil unless library

      Array(library).product(LIBRARY_DIRS).map { |name, dir| File.join(dir, name) }.find { |path| File.exist?(path) }
    end

    LOOKS = {
      "glibc" => Look.new("#000000", Look::SOLID, :circle),
      "arena2" => Look.new("#0072B2", Look::SOLID, :square),
      "jemalloc" => Look.new("#009E73", Look::SOLID, :triangle),
      "trim" => Look.new("#CC79A7", Look::SOLID, :diamond),
      "tcmalloc" => Look.new("#E69F00", Look::SOLID, :triangle_down),
      "mimalloc" => Look.new("#D55E00", Look::SOLID, :cross),
      "jemalloc-tuned" => Look.new("#117733", Look::DASHED, :triangle),
      "jemalloc-bg" => Look.new("#44AA99", Look::DOTTED, :triangle),
      "arena4" => Look.new("#56B4E9", Look::DASHED, :square),
      "yjit" => Look.new("#882255", Look::DASHED, :circle),
      "mmap-fixed" => Look.new("#999933", Look::DOTTED, :circle),
      "trim-1s" => Look.new("#AA4499", Look::DASH_DOT, :diamond),
      "warmup" => Look.new("#CC6677", Look::DASHED, :diamond),
      "no-probe" => Look.new("#332288", Look::DOTTED, :circle)
    }.freeze

    # The look of a configuration by name, whether it is one of these or not.
    def self.look(name)
      LOOKS.fetch(name) { Look.spare(name) }
    end

    # Why this configuration cannot run here, or nil.
    # Why this configuration cannot run here, or nil. cluster: whether Puma runs workers.
    def missing(cluster: false)
      return "it acts before Puma forks: cluster mode only (WORKERS=1 or more)" if cluster_only && !cluster
      if env.to_h.key?("RUBY_YJIT_ENABLE") && !defined?(RubyVM::YJIT)
        return "this Ruby (#{RUBY_VERSION}) was built without YJIT"
      end
      return nil if library.nil? || library_path

      "#{Array(library).join(" or ")} not found (apt-get install #{package})"
    end

    def server_env
      library ? env.to_h.merge("LD_PRELOAD" => library_path) : env.to_h
    end
  end
end
