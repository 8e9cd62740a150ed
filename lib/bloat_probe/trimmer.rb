# frozen_string_literal: true

module BloatProbe
  # Calls malloc_trim(0) every `interval` seconds on a background thread: glibc then hands
  # back the free pages inside its arenas, which plain free() leaves resident. The trim
  # runs with the GVL released, so request threads keep running meanwhile.
  class Trimmer
    include Periodic

    # Shorter would keep a core busy trimming; longer than a day, and no one sees it work.
    INTERVALS = 0.01..86_400.0

    attr_reader :interval, :trims, :released_bytes

    def self.start(interval:)
      new(interval: interval).tap(&:start)
    end

    def initialize(interval:)
      @interval = BloatProbe.check_number("interval", interval, INTERVALS, unit: " seconds")
      @trims = 0
      @released_bytes = 0
    end

    # One malloc_trim(0); what start's thread does each interval.
    def tick
      result = BloatProbe.trim
      @trims += 1
      @released_bytes += [result.released_bytes, 0].max
    end

    def to_h
      { interval: @interval, trims: @trims, released_bytes: @released_bytes }
    end

    private

    def thread_name = "bloat_probe-trimmer"

    # A trim right at start would find nothing freed yet.
    def work_first? = false
  end
end
