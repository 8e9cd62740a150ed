# frozen_string_literal: true

module BloatProbe
  # Calls malloc_trim(0) every `interval` seconds on a background thread: glibc then hands
  # back the free pages inside its arenas, which plain free() leaves resident. The trim
  # runs with the GVL released, so request threads keep running meanwhile.
  class Trimmer
    # Shorter would keep a core busy trimming; longer than a day, and no one sees it work.
    INTERVALS = 0.01..86_400.0

    attr_reader :interval, :trims, :released_bytes

    class << self
      # The Trimmer started last in this process, for the metrics' counters.
      attr_accessor :current
    end

    def self.start(interval:)
      new(interval: interval).tap(&:start)
    end

    def initialize(interval:)
      @interval = BloatProbe.check_number("interval", interval, INTERVALS, unit: " seconds")
      @trims = 0
      @released_bytes = 0
    end

    # Starts the thread, or starts it again where it is gone: in a forked child (a Puma
    # worker after preload_app!) the parent's thread does not exist.
    def start
      Trimmer.current = self
      return self if @thread&.alive?

      @thread = Thread.new do
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
