# frozen_string_literal: true

module BloatProbe
  # One moment of the process's memory, as the history keeps it and the dashboard charts
  # it: RSS, memory in use (malloc'd and not freed, the Ruby heap's pages not counted),
  # free memory the allocator holds and is still resident, the Ruby heap, the arenas, and
  # what the process shares with others (in a Puma worker, the master's pages) or not.
  Sample = Reading.define(:time, :rss, :malloc_in_use, :free, :arena_count, :ruby_heap, :shared, :private,
                          bytes: %i[rss malloc_in_use free ruby_heap shared private])

  # The readings of one moment, taken together, and the diagnosis of those very readings
  # (Examiner#take). memory was read with detail.
  Moment = Struct.new(:stats, :memory, :cgroup, :diagnosis, keyword_init: true)

  class Moment
    def self.from_h(hash)
      new(stats: ArenaStats.from_h(hash.fetch(:arena_stats)), memory: Memory.from_h(hash.fetch(:memory)),
          cgroup: Cgroup.from_h(hash.fetch(:cgroup)), diagnosis: Diagnosis.from_h(hash.fetch(:diagnosis)))
    end

    def time
      diagnosis.taken_at
    end

    # The figures the history keeps, from the diagnosis.
    def sample
      Sample.new(time, diagnosis.rss, diagnosis.malloc_in_use, diagnosis.free, diagnosis.arena_count,
                 diagnosis.ruby_heap, memory.shared, memory.private)
    end
  end
end
