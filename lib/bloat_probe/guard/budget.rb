# frozen_string_literal: true

module BloatProbe
  class Guard
    # How much memory a process may hold, and what counts against it: bytes or a multiple
    # of the primary's USS (a Puma cluster's master) count this process's USS; a share of
    # the cgroup's limit counts the container's usage, as the OOM killer does.
    class Budget
      KINDS = %i[bytes share multiple].freeze

      attr_reader :kind, :value, :text

      # "1.5G" (bytes, with a unit: K, M, G or T, binary), "80%" (of the cgroup's limit) or
      # "3x" (of the primary's USS); anything else raises, naming the setting.
      def self.parse(text, name: "BLOAT_PROBE_GUARD_BUDGET")
        raw = text.to_s.strip
        bytes = Setting.parse_bytes(raw)
        return new(:bytes, bytes, raw) if bytes && bytes >= 1 << 20

        case raw
        when /\A(\d+(?:\.\d+)?)\s*%\z/
          share = Float(Regexp.last_match(1)) / 100
          return new(:share, share, raw) if share.positive? && share <= 1
        when /\A(\d+(?:\.\d+)?)\s*x\z/i
          multiple = Float(Regexp.last_match(1))
          return new(:multiple, multiple, raw) if multiple > 1 && multiple <= 100
        end
        raise SettingError, "#{name} must be bytes with a unit (1.5G, 800M; 1M at least), a share of the " \
                            "container's memory limit (80%, at most 100%) or a multiple of the primary's USS " \
                            "(3x, above 1), got #{BloatProbe.excerpt(text)}"
      end

      def initialize(kind, value, text)
        raise ArgumentError, "kind must be one of #{KINDS.join(", ")}, got #{kind.inspect}" unless KINDS.include?(kind)

        @kind = kind
        @value = value
        @text = text
        freeze
      end

      # The budget in bytes now: a share or a multiple is worked out at each check.
      def bytes(cgroup = BloatProbe.cgroup)
        case @kind
        when :bytes then @value
        when :share
          limit = cgroup.memory_limit or raise(Error, "budget #{@text}: this process has no cgroup memory limit")
          (limit * @value).round
        else (BloatProbe.memory_of(Process.ppid).uss * @value).round
        end
      end

      # What counts against the budget in a moment already taken.
      def used_in(moment)
        @kind == :share ? usage(moment.cgroup) : moment.memory.uss
      end

      # What counts against it now, read alone (smaps_rollup, or the cgroup's usage).
      def used_now
        @kind == :share ? usage(BloatProbe.cgroup) : BloatProbe.memory_of(Process.pid).uss
      end

      private

      def usage(cgroup)
        cgroup.memory_usage || raise(Error, "no cgroup memory usage to read")
      end
    end
  end
end
