# frozen_string_literal: true

require "etc"

module BloatProbe
  # A Rack app that serves this process's memory in Prometheus's text exposition format
  # (version 0.0.4). Mount it where your monitoring scrapes:
  #
  #   # config/routes.rb
  #   mount BloatProbe::Metrics.new => "/bloat/metrics"
  #
  # Each scrape reads RSS and malloc_info afresh (sub-millisecond); the verdict, PSS and
  # USS come from the Monitor's latest diagnosis (taken at most every
  # diagnosis_max_age seconds, as it reads /proc/self/smaps). In a Puma cluster the
  # scrape also returns every other live worker's series, as each worker's Reporter
  # last published them, labelled worker="N".
  class Metrics
    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    # name => [type, help]. Sizes in bytes, as Prometheus's conventions ask.
    FAMILIES = {
      "process_resident_memory_bytes" => ["gauge", "Resident memory size in bytes."],
      "process_start_time_seconds" => ["gauge", "Start time of the process since the Unix epoch in seconds."],
      "bloat_probe_proportional_memory_bytes" => ["gauge", "PSS: resident memory with shared pages divided among their sharers."],
      "bloat_probe_unique_memory_bytes" => ["gauge", "USS: resident memory that no other process maps."],
      "bloat_probe_allocator_info" => ["gauge", "The malloc serving the process (value 1)."],
      "bloat_probe_malloc_in_use_bytes" => ["gauge", "Bytes malloc'd and not freed (glibc: arenas and mmapped chunks; jemalloc: allocated)."],
      "bloat_probe_malloc_free_bytes" => ["gauge", "Bytes the allocator holds free (glibc: free chunks in the arenas; jemalloc: resident minus allocated)."],
      "bloat_probe_malloc_trimmable_bytes" => ["gauge", "Bytes malloc_trim(0) would hand back, estimated (glibc only)."],
      "bloat_probe_malloc_arenas" => ["gauge", "glibc malloc arenas."],
      "bloat_probe_malloc_mmap_bytes" => ["gauge", "Bytes in chunks glibc mmapped outside the arenas."],
      "bloat_probe_arena_system_bytes" => ["gauge", "Bytes each glibc arena has from the system."],
      "bloat_probe_arena_in_use_bytes" => ["gauge", "Bytes in use in each glibc arena."],
      "bloat_probe_arena_free_bytes" => ["gauge", "Bytes free in each glibc arena."],
      "bloat_probe_ruby_heap_bytes" => ["gauge", "Bytes of Ruby's object heap pages (GC.stat)."],
      "bloat_probe_jemalloc_allocated_bytes" => ["gauge", "jemalloc stats.allocated."],
      "bloat_probe_jemalloc_active_bytes" => ["gauge", "jemalloc stats.active."],
      "bloat_probe_jemalloc_resident_bytes" => ["gauge", "jemalloc stats.resident."],
      "bloat_probe_jemalloc_mapped_bytes" => ["gauge", "jemalloc stats.mapped."],
      "bloat_probe_jemalloc_retained_bytes" => ["gauge", "jemalloc stats.retained."],
      "bloat_probe_trimmer_released_bytes_total" => ["counter", "RSS released by BloatProbe::Trimmer's malloc_trim calls."],
      "bloat_probe_trimmer_trims_total" => ["counter", "malloc_trim calls made by BloatProbe::Trimmer."],
      "bloat_probe_verdict" => ["gauge", "The latest diagnosis: 1 for its verdict, 0 for the others."],
      "bloat_probe_diagnosis_timestamp_seconds" => ["gauge", "When the latest diagnosis was taken, since the Unix epoch."]
    }.freeze

    # [name, labels, value] triples for one process.
    def self.series(stats, memory, diagnosis, labels: {})
      out = []
      add = ->(name, value, extra = {}) { out << [name, labels.merge(extra), value] unless value.nil? }
      add.call("process_resident_memory_bytes", memory.rss)
      add.call("process_start_time_seconds", process_start_time)
      add.call("bloat_probe_proportional_memory_bytes", diagnosis.pss)
      add.call("bloat_probe_unique_memory_bytes", diagnosis.uss)
      add.call("bloat_probe_allocator_info", 1, allocator: stats.allocator.to_s, version: stats.allocator_version.to_s)
      add.call("bloat_probe_malloc_in_use_bytes", stats.malloc_in_use)
      add.call("bloat_probe_malloc_free_bytes", stats.malloc_free)
      if stats.glibc?
        add.call("bloat_probe_malloc_trimmable_bytes", diagnosis.trimmable)
        add.call("bloat_probe_malloc_arenas", stats.arena_count)
        add.call("bloat_probe_malloc_mmap_bytes", stats.mmap_bytes)
        stats.arenas.each do |arena|
          arena_label = { arena: arena.index.to_s }
          add.call("bloat_probe_arena_system_bytes", arena.system, arena_label)
          add.call("bloat_probe_arena_in_use_bytes", arena.in_use, arena_label)
          add.call("bloat_probe_arena_free_bytes", arena.free, arena_label)
        end
      elsif (jemalloc = stats.jemalloc)
        %i[allocated active resident mapped retained].each do |field|
          add.call("bloat_probe_jemalloc_#{field}_bytes", jemalloc[field])
        end
      end
      add.call("bloat_probe_ruby_heap_bytes", diagnosis.ruby_heap)
      if (trimmer = Trimmer.current)
        add.call("bloat_probe_trimmer_released_bytes_total", trimmer.released_bytes)
        add.call("bloat_probe_trimmer_trims_total", trimmer.trims)
      end
      Diagnosis::VERDICTS.each do |verdict|
        add.call("bloat_probe_verdict", verdict == diagnosis.verdict ? 1 : 0, verdict: verdict.to_s)
      end
      add.call("bloat_probe_diagnosis_timestamp_seconds", diagnosis.taken_at)
      out
    end

    # The exposition text of many processes' series: each family's HELP and TYPE once,
    # then all its samples together, as the format requires.
    def self.render(series)
      by_name = series.group_by(&:first)
      FAMILIES.filter_map do |name, (type, help)|
        samples = by_name[name] or next
        lines = ["# HELP #{name} #{help}", "# TYPE #{name} #{type}"]
        # Integers, and Ruby's shortest exact Float form, are numbers as Prometheus reads them.
        samples.each { |_name, labels, value| lines << "#{name}#{label_text(labels)} #{value}" }
        lines.join("\n")
      end.join("\n") + "\n"
    end

    def self.label_text(labels)
      return "" if labels.empty?

      pairs = labels.map { |key, value| "#{key}=\"#{value.to_s.gsub(/[\\"\n]/, "\\" => "\\\\", '"' => '\\"', "\n" => "\\n")}\"" }
      "{#{pairs.join(",")}}"
    end

    # Boot time plus the process's start in clock ticks (field 22 of /proc/self/stat),
    # remembered per pid: a forked worker starts later than its master.
    def self.process_start_time
      @process_start_time = nil if @process_start_time&.first != Process.pid
      (@process_start_time ||= [Process.pid, read_start_time]).last
    end

    def self.read_start_time
      boot = File.read("/proc/stat")[/^btime (\d+)/, 1].to_i
      ticks = File.read("/proc/self/stat").split(") ", 2).last.split[19].to_i
      boot + ticks.fdiv(Etc.sysconf(Etc::SC_CLK_TCK))
    end
    private_class_method :read_start_time

    def initialize(monitor: BloatProbe.monitor, cluster: -> { BloatProbe.cluster })
      @monitor = monitor
      @cluster = cluster
    end

    def call(env)
      unless %w[GET HEAD].include?(env["REQUEST_METHOD"])
        return [405, { "content-type" => "text/plain", "allow" => "GET, HEAD" }, ["GET only\n"]]
      end

      cluster = @cluster.call
      stats, memory = @monitor.sample(record: false)
      series = self.class.series(stats, memory, @monitor.diagnosis, labels: cluster&.labels || {})
      series.concat(cluster.peer_series) if cluster
      body = self.class.render(series)
      [200, { "content-type" => CONTENT_TYPE, "content-length" => body.bytesize.to_s },
       [env["REQUEST_METHOD"] == "HEAD" ? "" : body]]
    end
  end
end
