# frozen_string_literal: true

module AllocatorBench
  # One allocator set-up of the server: a name, the environment that selects it, and
  # what it needs installed.
  LIBRARY_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"].freeze

  Configuration = Struct.new(:name, :env, :library, :package, :summary, keyword_init: true) do
    def self.all
      [
        new(name: "glibc", env: {}, summary: "glibc malloc, default arenas (8 × cores)"),
        new(name: "arena2", env: { "MALLOC_ARENA_MAX" => "2" }, summary: "glibc with MALLOC_ARENA_MAX=2"),
        new(name: "jemalloc", library: "libjemalloc.so.2", package: "libjemalloc2",
            summary: "jemalloc 5 via LD_PRELOAD"),
        new(name: "trim", env: { "BLOAT_PROBE_TRIM_INTERVAL" => "1" },
            summary: "glibc, malloc_trim(0) every second from BloatProbe::Trimmer"),
        new(name: "tcmalloc", library: "libtcmalloc_minimal.so.4", package: "libtcmalloc-minimal4",
            summary: "tcmalloc (gperftools) via LD_PRELOAD"),
        new(name: "mimalloc", library: "libmimalloc.so.2", package: "libmimalloc2.0",
            summary: "mimalloc 2 via LD_PRELOAD")
      ]
    end

    # CONFIGS=glibc,jemalloc picks some, in the order given.
    def self.select(names)
      return all if names.nil? || names.strip.empty?

      by_name = all.to_h { |config| [config.name, config] }
      chosen = names.split(",").map(&:strip).reject(&:empty?).map do |name|
        by_name.fetch(name) { raise ArgumentError, "unknown configuration #{name.inspect}; known: #{by_name.keys.join(", ")}" }
      end
      raise ArgumentError, "CONFIGS names no configuration, got #{names.inspect}; known: #{by_name.keys.join(", ")}" if chosen.empty?

      chosen
    end

    def library_path
      return nil unless library

      LIBRARY_DIRS.map { |dir| File.join(dir, library) }.find { |path| File.exist?(path) }
    end

    # Why this configuration cannot run here, or nil.
    def missing
      return nil if library.nil? || library_path

      "#{library} not found (apt-get install #{package})"
    end

    def server_env
      library ? env.to_h.merge("LD_PRELOAD" => library_path) : env.to_h
    end
  end
end
