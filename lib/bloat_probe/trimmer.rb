# frozen_string_literal: true

module BloatProbe
  # Calls malloc_trim(0) every `interval` seconds on a background thread: glibc then hands
  # back the free pages inside its arenas, which plain free() leaves resident. The trim
  # runs with the GVL released, so request threads keep running meanwhile.
  #
  # A trim costs: it locks each arena while it walks it, and the pages it returns fault back
  # in when they are used again. With `min_trimmable`, each tick first diagnoses the process
  # and trims only where the verdict says the allocator holds free memory and a trim would
  # return that many bytes at least (the estimate from malloc_info, capped by what smaps
  # says is resident): a trim that pays for itself, rather than one on the clock.
  class Trimmer
    include Periodic

    # Shorter would keep a core busy trimming; longer than a day, and no one sees it work.
    INTERVALS = 0.01..86_400.0

    attr_reader :interval, :min_trimmable, :trims, :skipped, :released_bytes

    def self.start(interval:, min_trimmable: nil)
      new(interval: interval, min_trimmable: min_trimmable).tap(&:start)
    end

    def initialize(interval:, min_trimmable: nil)
      @interval = BloatProbe.check_number("interval", interval, INTERVALS, unit: " seconds")
      @min_trimmable = min_trimmable && BloatProbe.check_number("min_trimmable", min_trimmable, 1..(1 << 50), Integer)
      @trims = 0
      @skipped = 0
      @released_bytes = 0
    end

    # One malloc_trim(0), unless the diagnosis says it would not pay; what start's thread
    # does each interval.
    def tick
      if @min_trimmable && !worth_it?(BloatProbe.diagnose)
        @skipped += 1
        return
      end
      result = BloatProbe.trim
      @trims += 1
      @released_bytes += [result.released_bytes, 0].max
    end

    def to_h
      { interval: @interval, min_trimmable: @min_trimmable, trims: @trims, skipped: @skipped,
        released_bytes: @released_bytes }
    end

    private

    def worth_it?(diagnosis)
      Guard::FREEABLE.include?(diagnosis.verdict) && diagnosis.trimmable.to_i >= @min_trimmable
    end

    def thread_name = "bloat_probe-trimmer"

    # A trim right at start would find nothing freed yet.
    def work_first? = false
  end
end
