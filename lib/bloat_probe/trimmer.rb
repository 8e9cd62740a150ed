# frozen_string_literal: true

module BloatProbe
  # Calls malloc_trim(0) every `interval` seconds on a background thread: glibc then hands
  # back the free pages inside its arenas, which plain free() leaves resident. The trim
  # runs with the GVL released, so request threads keep running meanwhile.
  class Trimmer
    attr_reader :interval, :trims, :released_bytes

    def self.start(interval:)
      new(interval: interval).tap(&:start)
    end

    def initialize(interval:)
      unless interval.is_a?(Numeric) && interval.positive? && interval.finite?
        raise ArgumentError, "interval must be a positive number of seconds, got #{interval.inspect}"
      end

      @interval = interval
      @trims = 0
      @released_bytes = 0
    end

    def start
      @thread ||= Thread.new do
        Thread.current.name = "bloat_probe-trimmer"
        loop do
          sleep @interval
          result = BloatProbe.trim
          @trims += 1
          @released_bytes += [result.released_bytes, 0].max
        end
      end
      self
    end

    def stop
      @thread&.kill&.join
      @thread = nil
    end

    def to_h
      { interval: @interval, trims: @trims, released_bytes: @released_bytes }
    end
  end
end
