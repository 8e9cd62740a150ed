# frozen_string_literal: true

module BloatProbe
  # Human formatting, used only where a person reads the figures (inspect, tables).
  module Format
    UNITS = %w[B KiB MiB GiB TiB].freeze

    def self.bytes(count)
      return "-" if count.nil?

      scaled = count.to_f
      unit = 0
      while scaled.abs >= 1024 && unit < UNITS.size - 1
        scaled /= 1024
        unit += 1
      end
      unit.zero? ? "#{count} B" : format("%.#{scaled.abs < 10 ? 1 : 0}f %s", scaled, UNITS[unit])
    end
  end

  # A reading: a frozen Struct whose inspect shows sizes readably. Byte fields stay
  # Integers; only inspect formats them. Built positionally (cheap, for readings taken on
  # every request) or from a Hash with .from_h.
  module Reading
    def self.define(*fields, bytes: [], &body)
      Struct.new(*fields) do
        include Reading
        extend ClassMethods
        const_set(:BYTE_FIELDS, bytes.freeze)
        class_eval(&body) if body
      end
    end

    # The fields are named twice, in the native layer and here: should the two drift
    # apart, a reading raises at once instead of showing a nil.
    module ClassMethods
      def from_h(hash)
        unless hash.size == members.size && members.all? { |name| hash.key?(name) }
          raise Error, "#{name}: the native layer gave #{hash.keys.sort.inspect}, expected #{members.sort.inspect}"
        end

        new(*members.map { |name| hash[name] })
      end
    end

    def initialize(*values)
      unless values.size == self.class.members.size
        raise Error, "#{self.class.name}: #{values.size} values for #{self.class.members.size} fields"
      end

      super
      freeze
    end

    def inspect
      "#<#{self.class.name} #{inspect_fields.join(", ")}>"
    end
    alias_method :to_s, :inspect

    def pretty_print(printer)
      printer.text(inspect)
    end

    private

    # A nil field was not read (memory's swap without detail: true): left out, so that
    # it is not mistaken for a zero.
    def inspect_fields
      to_h.compact.map do |name, value|
        shown = self.class::BYTE_FIELDS.include?(name) ? Format.bytes(value) : value.inspect
        "#{name}=#{shown}"
      end
    end
  end

  Mallinfo = Reading.define(
    :arena, :ordblks, :smblks, :hblks, :hblkhd, :usmblks, :fsmblks, :uordblks, :fordblks, :keepcost,
    bytes: %i[arena hblkhd usmblks fsmblks uordblks fordblks keepcost]
  )

  # pss, uss, swap, heap_mappings and arena_resident only with memory(detail: true).
  Memory = Reading.define(:rss, :anon, :file, :swap, :heap_mappings, :pss, :uss, :arena_resident,
                          bytes: %i[rss anon file swap pss uss arena_resident])

  Allocator = Reading.define(:name, :version) do
    def glibc?
      name == :glibc
    end

    def to_s
      "#{name} #{version}"
    end
  end

  JemallocStats = Reading.define(
    :source, :version, :allocated, :active, :resident, :mapped, :retained, :narenas,
    bytes: %i[allocated active resident mapped retained]
  )

  TrimResult = Reading.define(:released, :rss_before, :rss_after, :elapsed, bytes: %i[rss_before rss_after]) do
    def released_bytes
      rss_before - rss_after
    end
  end

  Arena = Reading.define(
    :index, :system, :system_max, :in_use, :free, :fast_count, :fast_bytes, :rest_count, :rest_bytes,
    :aspace, :aspace_mprotect, :subheaps, :trimmable,
    bytes: %i[system system_max in_use free fast_bytes rest_bytes aspace aspace_mprotect trimmable]
  )

  # The headline reading: glibc's arenas as malloc_info reports them.
  ArenaStats = Reading.define(
    :allocator, :allocator_version, :rss, :arena_count, :system, :in_use, :free, :mmap_count, :mmap_bytes,
    :arenas, :jemalloc,
    bytes: %i[rss system in_use free mmap_bytes]
  ) do
    def self.from_h(hash)
      arenas = hash[:arenas]&.map { |arena| Arena.from_h(arena) }
      jemalloc = hash[:jemalloc] && JemallocStats.from_h(hash[:jemalloc])
      super(hash.merge(arenas: arenas, jemalloc: jemalloc))
    end

    # False under jemalloc, tcmalloc or mimalloc: then the arena fields are nil.
    def glibc?
      allocator == :glibc
    end

    # Bytes malloc'd and not freed, whichever allocator can tell: glibc's arenas and
    # mmapped chunks, or jemalloc's allocated; nil under tcmalloc or mimalloc.
    def malloc_in_use
      return in_use + mmap_bytes if glibc?

      jemalloc&.allocated
    end

    # Bytes the allocator holds free: glibc's free chunks, or jemalloc's resident pages
    # that are not allocated; nil where neither is readable.
    def malloc_free
      return free if glibc?

      jemalloc && [jemalloc.resident - jemalloc.allocated, 0].max
    end

    def to_h
      super.merge(arenas: arenas&.map(&:to_h), jemalloc: jemalloc&.to_h)
    end

    def inspect
      head = "#<#{self.class.name} #{allocator} #{allocator_version}, rss=#{Format.bytes(rss)}"
      unless glibc?
        detail = jemalloc ? ", jemalloc allocated=#{Format.bytes(jemalloc.allocated)} resident=#{Format.bytes(jemalloc.resident)}" : ""
        return "#{head}: glibc's arenas are not in use#{detail}>"
      end
      rows = arenas.map do |a|
        format("  %5d %10s %10s %10s", a.index, Format.bytes(a.system), Format.bytes(a.in_use), Format.bytes(a.free))
      end
      ["#{head}, #{arena_count} arenas, system=#{Format.bytes(system)}, in_use=#{Format.bytes(in_use)}, " \
       "free=#{Format.bytes(free)}, mmap=#{mmap_count} chunks/#{Format.bytes(mmap_bytes)}",
       format("  %5s %10s %10s %10s", "arena", "system", "in use", "free"), *rows].join("\n") + ">"
    end
  end

  MallocStats = Reading.define(:text, :arenas, :system, :in_use, :max_mmap_regions, :max_mmap_bytes,
                               bytes: %i[system in_use max_mmap_bytes]) do
    def self.from_h(hash)
      super(hash.merge(arenas: hash[:arenas].map { |arena| self::Arena.from_h(arena) }))
    end

    def to_h
      super.merge(arenas: arenas.map(&:to_h))
    end

    private

    def inspect_fields
      ["#{arenas.size} arenas", *super.reject { |f| f.start_with?("text=", "arenas=") }]
    end
  end

  MallocStats::Arena = Reading.define(:index, :system, :in_use, bytes: %i[system in_use])

  ChurnResult = Reading.define(:allocations, :bytes, :retained_count, :retained_bytes, :elapsed, :threads,
                               :allocator, :retained, bytes: %i[bytes retained_bytes]) do
    # Frees the retained blocks now rather than at the next GC.
    def release
      retained.release
    end
  end
end
