# frozen_string_literal: true

module BloatProbe
  class Metrics
    # Every metric family the probe exports, declared once: its name, type and help, and
    # how to read it from a Snapshot; and one process's series from a Snapshot.
    module Families
      module_function

      # Endpoints or jobs given a label of their own; the rest are summed under "other".
      ENDPOINT_LABELS = 20

      # A metric family: its name, type and help, and how to read its value from a
      # Snapshot: a number, nil (not measured here), or [[labels, value], …], where a
      # histogram's samples carry their name's suffix third: [[labels, value, "_bucket"], …].
      Family = Struct.new(:name, :type, :help, :read)

      def family(name, type, help, &read)
        Family.new(name, type, help, read).freeze
      end

      def per_arena(snapshot, field)
        return unless snapshot.glibc?

        snapshot.stats.arenas.map { |arena| [{ arena: arena.index.to_s }, arena.public_send(field)] }
      end

      # A Durations as a histogram's samples.
      def histogram(durations)
        return unless durations

        buckets = durations.cumulative.map do |bound, calls|
          [{ le: bound.infinite? ? "+Inf" : bound.to_s }, calls, "_bucket"]
        end
        [*buckets, [{}, durations.sum, "_sum"], [{}, durations.count, "_count"]]
      end

      # A memory reading's shared or private bytes, clean and dirty apart.
      def sharing(memory, kind)
        %w[clean dirty].map { |state| [{ state: state }, memory.public_send(:"#{kind}_#{state}")] }
      end

      # The ENDPOINT_LABELS largest entries by name, the rest summed as "other".
      def per_endpoint(snapshot, field)
        entries = snapshot.attribution or return
        top, rest = entries.partition.with_index { |_entry, i| i < ENDPOINT_LABELS }
        samples = top.map { |entry| [{ endpoint: entry.name }, entry.public_send(field)] }
        return samples if rest.empty?

        other = samples.find { |labels, _| labels[:endpoint] == Attribution::OTHER }
        folded = rest.sum { |entry| entry.public_send(field) }
        other ? other[1] += folded : samples << [{ endpoint: Attribution::OTHER }, folded]
        samples
      end

      # Every family, in the order they are rendered. Sizes in bytes, as Prometheus's
      # conventions ask.
      ALL = [
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.") { |s| s.memory.rss },
        family("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds.") do
          process_start_time
        end,
        family("bloat_probe_proportional_memory_bytes", "gauge",
               "PSS: resident memory with shared pages divided among their sharers.") { |s| s.diagnosis.pss },
        family("bloat_probe_unique_memory_bytes", "gauge", "USS: resident memory that no other process maps.") do |s|
          s.diagnosis.uss
        end,
        family("bloat_probe_shared_bytes", "gauge",
               "Resident memory another process maps too (smaps_rollup's Shared_Clean and Shared_Dirty): " \
               "in a forked worker, what it still shares with the master.") { |s| sharing(s.memory, :shared) },
        family("bloat_probe_private_bytes", "gauge",
               "Resident memory no other process maps (Private_Clean and Private_Dirty; together, USS).") do |s|
          sharing(s.memory, :private)
        end,
        family("bloat_probe_allocator_info", "gauge", "The malloc serving the process (value 1).") do |s|
          [[{ allocator: s.stats.allocator.to_s, version: s.stats.allocator_version.to_s }, 1]]
        end,
        family("bloat_probe_malloc_in_use_bytes", "gauge",
               "Bytes malloc'd and not freed, Ruby's heap pages not counted " \
               "(glibc: arenas and mmapped chunks; jemalloc: allocated).") { |s| s.diagnosis.malloc_in_use },
        family("bloat_probe_malloc_free_bytes", "gauge",
               "Bytes the allocator holds free and still resident " \
               "(glibc: free chunks in the arenas; jemalloc: resident minus allocated).") { |s| s.diagnosis.free },
        family("bloat_probe_malloc_in_use_growth_bytes_per_hour", "gauge",
               "How fast memory in use has grown since the warm-up (least squares; absent during it).") do |s|
          s.diagnosis.trend&.in_use_per_hour&.round
        end,
        family("bloat_probe_malloc_trimmable_bytes", "gauge",
               "Bytes malloc_trim(0) would hand back, estimated (glibc only).") do |s|
          s.diagnosis.trimmable if s.glibc?
        end,
        family("bloat_probe_malloc_arenas", "gauge", "glibc malloc arenas.") { |s| s.stats.arena_count },
        family("bloat_probe_malloc_mmap_bytes", "gauge", "Bytes in chunks glibc mmapped outside the arenas.") do |s|
          s.stats.mmap_bytes
        end,
        family("bloat_probe_arena_system_bytes", "gauge", "Bytes each glibc arena has from the system.") do |s|
          per_arena(s, :system)
        end,
        family("bloat_probe_arena_in_use_bytes", "gauge", "Bytes in use in each glibc arena.") do |s|
          per_arena(s, :in_use)
        end,
        family("bloat_probe_arena_free_bytes", "gauge", "Bytes free in each glibc arena.") { |s| per_arena(s, :free) },
        family("bloat_probe_cgroup_memory_limit_bytes", "gauge",
               "The container's memory limit (cgroup memory.max or memory.limit_in_bytes); absent without one.") do |s|
          s.cgroup&.memory_limit
        end,
        family("bloat_probe_cgroup_memory_usage_bytes", "gauge",
               "The container's memory usage, as the OOM killer sees it.") do |s|
          s.cgroup&.memory_usage
        end,
        family("bloat_probe_cgroup_anon_bytes", "gauge", "Anonymous memory of the container (memory.stat).") do |s|
          s.cgroup&.anon
        end,
        family("bloat_probe_glibc_arena_cap", "gauge",
               "Arenas glibc may make here: MALLOC_ARENA_MAX, its tunable, or 8 × the host's CPUs.") do |s|
          s.cgroup&.arena_cap
        end,
        family("bloat_probe_ruby_heap_bytes", "gauge", "Bytes of Ruby's object heap pages (GC.stat).") do |s|
          s.diagnosis.ruby_heap
        end,
        # One per byte field of the reading, as yabeda-jemalloc names them.
        *JemallocStats::BYTE_FIELDS.map do |field|
          family("bloat_probe_jemalloc_#{field}_bytes", "gauge", "jemalloc stats.#{field}.") do |s|
            s.stats.jemalloc&.public_send(field)
          end
        end,
        family("bloat_probe_trimmer_released_bytes_total", "counter",
               "RSS released by BloatProbe::Trimmer's malloc_trim calls.") { |s| s.trimmer&.released_bytes },
        family("bloat_probe_trimmer_trims_total", "counter", "malloc_trim calls made by BloatProbe::Trimmer.") do |s|
          s.trimmer&.trims
        end,
        family("bloat_probe_endpoint_calls_total", "counter",
               "Requests or jobs measured, by endpoint (the largest #{ENDPOINT_LABELS}, the rest as other).") do |s|
          per_endpoint(s, :calls)
        end,
        family("bloat_probe_call_duration_seconds", "histogram",
               "How long the requests or jobs the attribution measured took, all endpoints together.") do |s|
          histogram(s.durations)
        end,
        family("bloat_probe_endpoint_arena_growth_bytes_total", "counter",
               "Bytes by which the high-water mark of the glibc arena a request or job ran on rose while it " \
               "ran; under jemalloc, the bytes it left allocated.") do |s|
          per_endpoint(s, :raised_bytes)
        end,
        family("bloat_probe_guard_actions_total", "counter",
               "What BloatProbe::Guard did over budget (trim, purge, restart), by the verdict it acted on.") do |s|
          s.guard&.action_counts&.map do |(action, verdict), count|
            [{ action: action.to_s, verdict: verdict.to_s }, count]
          end
        end,
        family("bloat_probe_guard_released_bytes_total", "counter",
               "Bytes by which the guard's trims and purges brought the measured memory down.") do |s|
          s.guard&.released_bytes
        end,
        family("bloat_probe_reading_errors_total", "counter",
               "Readings that failed (the reporter logs each, and its figures wait for the next interval), " \
               "by reading.") do |s|
          s.reading_errors&.map { |reading, count| [{ reading: reading }, count] }
        end,
        family("bloat_probe_verdict", "gauge", "The latest diagnosis: 1 for its verdict, 0 for the others.") do |s|
          Diagnosis::VERDICTS.map { |verdict| [{ verdict: verdict.to_s }, verdict == s.diagnosis.verdict ? 1 : 0] }
        end,
        family("bloat_probe_diagnosis_timestamp_seconds", "gauge",
               "When the latest diagnosis was taken, since the Unix epoch.") { |s| s.diagnosis.taken_at },
        # The metrics port serves the last text Ruby rendered when Ruby is too busy to render
        # a fresh one: this says how old it is.
        family("bloat_probe_metrics_rendered_timestamp_seconds", "gauge",
               "When this process's series were rendered, since the Unix epoch.") { |_s| Time.now.to_f }
      ].freeze

      # [name, labels, value] triples for one process, every family that has a value.
      def series(snapshot, labels: {})
        ALL.flat_map do |family|
          value = family.read.call(snapshot)
          samples = value.is_a?(Array) ? value : [[{}, value]]
          samples.filter_map do |extra, sample, suffix|
            ["#{family.name}#{suffix}", labels.merge(extra), sample] unless sample.nil?
          end
        end
      end

      # Remembered per pid: a forked worker starts later than its master.
      def process_start_time
        @process_start_time = nil if @process_start_time&.first != Process.pid
        (@process_start_time ||= [Process.pid, Native.start_time(Process.pid)]).last
      end
    end
  end
end
