# frozen_string_literal: true

require "json"

# This process's memory as one JSON document: which process answered, its arena stats,
# memory and diagnosis (one moment of the probe's Recorder), its Trimmer's counts, a
# GC.stat summary and the attribution. rails-app's /bloat/stats.json and the bench's
# Sidekiq probe job write it with .take; the bench and the tests read it back with .parse,
# as values again.
StatsDocument = Struct.new(:process, :arena_stats, :memory, :diagnosis, :trimmer, :gc, :attribution, :footprint,
                           keyword_init: true)

class StatsDocument
  GC_FIELDS = %i[count minor_gc_count major_gc_count heap_live_slots heap_free_slots total_allocated_objects
                 malloc_increase_bytes oldmalloc_increase_bytes].freeze

  # Which process answered: its pid, and in a Puma cluster its worker's index.
  # process: more about the process. footprint: the probe's own (BloatProbe::Footprint,
  # a full GC and a walk of the heap), when asked.
  def self.take(probe: BloatProbe.probe, process: {}, footprint: false)
    yjit = defined?(RubyVM::YJIT) ? RubyVM::YJIT.enabled? : false
    moment = probe.recorder.take(record: false)
    new(process: { pid: Process.pid, worker: probe.cluster&.worker, ruby: RUBY_VERSION, yjit: yjit, **process },
        arena_stats: moment.stats, memory: moment.memory, diagnosis: moment.diagnosis,
        trimmer: probe.trimmer&.to_h, gc: GC.stat.slice(*GC_FIELDS), attribution: probe.attribution.entries,
        footprint: footprint ? BloatProbe::Footprint.take(probe) : nil)
  end

  def self.parse(text)
    hash = JSON.parse(text, symbolize_names: true)
    new(**hash, arena_stats: BloatProbe::ArenaStats.from_json_h(hash.fetch(:arena_stats)),
                memory: BloatProbe::Memory.from_json_h(hash.fetch(:memory)),
                diagnosis: BloatProbe::Diagnosis.from_json_h(hash.fetch(:diagnosis)),
                attribution: hash.fetch(:attribution).map { |entry| BloatProbe::Attribution::Entry.from_json_h(entry) },
                footprint: hash[:footprint] && BloatProbe::Footprint.from_json_h(hash[:footprint]))
  end

  def to_h
    super.merge(arena_stats: arena_stats.to_h, memory: memory.to_h, diagnosis: diagnosis.to_h,
                attribution: attribution.map(&:to_h), footprint: footprint&.to_h)
  end

  def to_json(*args)
    to_h.to_json(*args)
  end
end
