# frozen_string_literal: true

module BloatProbe
  # A reading: a frozen Struct whose inspect shows sizes readably. Byte fields stay
  # Integers; only inspect formats them. The native layer's readings are made from the
  # schemas it declares (Native::SCHEMAS: each field, its unit, its nested reading), so a
  # field is named once, in Rust; Ruby-made values (Sample) name theirs here.
  module Reading
    # bytes: the fields in bytes; names: the fields that hold a Symbol (JSON turns them
    # into text); nested: field => [:reading or :readings, the nested class's name under
    # BloatProbe].
    def self.define(*fields, bytes: [], names: [], nested: {}, &body)
      Struct.new(*fields) do
        include Reading
        extend ClassMethods
        const_set(:BYTE_FIELDS, bytes.freeze)
        const_set(:NAME_FIELDS, names.freeze)
        const_set(:NESTED, nested.freeze)
        const_set(:FIELDS, fields.freeze)
        class_eval(&body) if body
      end
    end

    # Defines every native reading as a constant of `namespace`, from its schema. A
    # nested class ("MallocStats::Arena") comes after its parent in SCHEMAS.
    def self.define_native(namespace)
      Native::SCHEMAS.each do |class_name, fields|
        *parents, name = class_name.split("::")
        owner = parents.reduce(namespace) { |scope, parent| scope.const_get(parent, false) }
        owner.const_set(name, define(*fields.map(&:first),
                                     bytes: fields.filter_map { |field, unit| field if unit == :bytes },
                                     names: fields.filter_map { |field, unit| field if unit == :name },
                                     nested: fields.to_h { |field, unit, nested| [field, [unit, nested]] }
                                                   .select { |_, (_, nested)| nested }))
      end
    end

    module ClassMethods
      # From the native layer's Hash (or a reading's to_h): its keys are the members, in
      # their order, as they come from the same schema. A Hash that differs all the same (a
      # stale build of the extension) raises at once instead of showing a nil.
      def from_h(hash)
        fields = self::FIELDS
        raise Error, "#{name}: got the fields #{hash.keys.inspect}, expected #{fields.inspect}" if hash.keys != fields

        values = hash.values
        return new(*values) if self::NESTED.empty?

        new(*fields.zip(values).map do |field, value|
          nested_value(field, value) { |nested, item| nested.from_h(item) }
        end)
      end

      # From the native layer's Array of values in the schema's order, for a flat reading
      # taken often (BloatProbe.memory): a wrong count raises, as from_h does.
      def from_a(values)
        new(*values)
      end

      # From its to_h as JSON gave it back (JSON.parse with symbolize_names: true): the
      # Symbols that JSON wrote as text are Symbols again, in nested readings too.
      def from_json_h(hash)
        check_size(hash)
        new(*members.map do |field|
          value = hash.fetch(field) { raise Error, "#{name}: no #{field.inspect} in #{hash.keys}" }
          value = value&.to_sym if self::NAME_FIELDS.include?(field)
          nested_value(field, value) { |nested, item| nested.from_json_h(item) }
        end)
      end

      private

      # A field too many or missing (a stale build of the extension) raises at once.
      def check_size(hash)
        return if hash.size == members.size

        raise Error, "#{name}: got the fields #{hash.keys.sort.inspect}, expected #{members.sort.inspect}"
      end

      # A nested reading's value built by the block from its Hash (one already built is
      # taken as it is), or the value as it is.
      def nested_value(field, value)
        kind, class_name = self::NESTED[field]
        return value if kind.nil? || value.nil?

        nested = BloatProbe.const_get(class_name)
        build = ->(item) { item.is_a?(nested) ? item : yield(nested, item) }
        kind == :readings ? value.map(&build) : build.call(value)
      end
    end

    def initialize(*values)
      raise Error, "#{self.class.name}: #{values.size} values for #{size} fields" unless values.size == size

      super
      freeze
    end

    # Nested readings as Hashes too.
    def to_h
      self.class::NESTED.each_key.with_object(super) do |field, hash|
        value = hash[field]
        hash[field] = value.is_a?(Array) ? value.map(&:to_h) : value&.to_h
      end
    end

    def inspect
      "#<#{self.class.name} #{inspect_fields.join(", ")}>"
    end
    alias to_s inspect

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

  Reading.define_native(self)

  # Behaviour of the native readings; their fields come from Native::SCHEMAS.
  class Allocator
    def glibc?
      name == :glibc
    end

    def to_s
      "#{name} #{version}"
    end
  end

  class Memory
    # Resident bytes another process maps too: in a forked Puma worker, mostly the
    # master's pages it has not written since fork. nil without detail.
    def shared
      shared_clean + shared_dirty if shared_clean
    end

    # Resident bytes no other process maps (uss, split by clean and dirty).
    def private
      private_clean + private_dirty if private_clean
    end
  end

  class TrimResult
    def released_bytes
      rss_before - rss_after
    end
  end

  # The headline reading: what the allocator holds; under glibc, its arenas as malloc_info
  # reports them (#glibc, an ArenaStats::Glibc), under jemalloc its statistics (#jemalloc).
  class ArenaStats
    # False under jemalloc, tcmalloc or mimalloc: then the arena figures are nil.
    def glibc?
      allocator == :glibc
    end

    # glibc's figures, read here as in the console (stats.arena_count, stats.free): nil
    # under another allocator.
    Glibc.members.each { |field| define_method(field) { glibc&.public_send(field) } }

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

    def inspect
      head = "#<#{self.class.name} #{allocator} #{allocator_version}, rss=#{Format.bytes(rss)}"
      return "#{head}: glibc's arenas are not in use#{jemalloc_detail}>" unless glibc?

      rows = arenas.map do |a|
        format("  %5d %10s %10s %10s", a.index, Format.bytes(a.system), Format.bytes(a.in_use), Format.bytes(a.free))
      end
      lines = ["#{head}, #{arena_count} arenas, system=#{Format.bytes(system)}, in_use=#{Format.bytes(in_use)}, " \
               "free=#{Format.bytes(free)}, mmap=#{mmap_count} chunks/#{Format.bytes(mmap_bytes)}",
               format("  %5s %10s %10s %10s", "arena", "system", "in use", "free"), *rows]
      "#{lines.join("\n")}>"
    end

    private

    def jemalloc_detail
      return "" unless jemalloc

      ", jemalloc allocated=#{Format.bytes(jemalloc.allocated)} resident=#{Format.bytes(jemalloc.resident)}"
    end
  end

  class MallocStats
    private

    def inspect_fields
      ["#{arenas.size} arenas", *super.reject { |f| f.start_with?("text=", "arenas=") }]
    end
  end

  class ChurnResult
    # Frees the retained blocks now rather than at the next GC.
    def release
      retained.release
    end
  end
end
