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
  # says is resident): a trim that pays for itself, rather than one on the clock. And a trim
  # whose memory was back by the next tick (RSS regrew by half of what it released) paid
  # for nothing: the process is busy reusing that memory, so the wait before the next look
  # doubles, up to MAX_WAIT intervals; a trim whose memory stays out brings it back to one.
  # Under load it then trims every few seconds, and once the load ends, within MAX_WAIT.
  class Trimmer
    include Periodic

    # Shorter would keep a core busy trimming; longer than a day, and no one sees it work.
    INTERVALS = 0.01..86_400.0
    MIN_TRIMMABLE = (1 << 20)..(1 << 40)
    MAX_WAIT = 8

    attr_reader :interval, :min_trimmable, :trims, :skipped, :released_bytes, :wait

    def self.start(interval:, min_trimmable: nil, recorder: BloatProbe.probe.recorder)
      new(interval: interval, min_trimmable: min_trimmable, recorder: recorder).tap(&:start)
    end

    # The Trimmer the environment asks for, not started: BLOAT_PROBE_TRIM_INTERVAL seconds
    # (1 is `rake bench`'s trim-1s) and, with BLOAT_PROBE_TRIM_MIN (64M), only when a trim
    # would return that much (its `trim`). nil where it is not asked for, or the allocator
    # is not glibc, where malloc_trim means nothing.
    def self.from_env(recorder:, env: ENV)
      interval = Setting.seconds("BLOAT_PROBE_TRIM_INTERVAL", range: INTERVALS, default: nil, env: env)
      floor = Setting.bytes("BLOAT_PROBE_TRIM_MIN", range: MIN_TRIMMABLE, default: nil, env: env)
      return unless interval && BloatProbe.allocator.glibc?

      new(interval: interval, min_trimmable: floor, recorder: recorder)
    end

    # recorder: whose moments (and thresholds) decide whether a trim pays.
    def initialize(interval:, min_trimmable: nil, recorder: BloatProbe.probe.recorder)
      @interval = BloatProbe.check_number("interval", interval, INTERVALS, unit: " seconds")
      @min_trimmable = min_trimmable && BloatProbe.check_number("min_trimmable", min_trimmable, MIN_TRIMMABLE, Integer)
      @trims = 0
      @skipped = 0
      @released_bytes = 0
      @wait = 1 # intervals between looks
      @next_look = 0.0
      @recorder = recorder
    end

    # One malloc_trim(0), unless the diagnosis says it would not pay or the last trim's
    # memory came straight back; what start's thread does each interval.
    def tick
      return trim unless @min_trimmable

      judge_last_trim
      if monotonic < @next_look || !worth_it?(@recorder.take(record: false).diagnosis)
        @skipped += 1
        return
      end
      released = trim
      @last_trim = [monotonic, released, BloatProbe.memory.rss]
    end

    def to_h
      { interval: @interval, min_trimmable: @min_trimmable, trims: @trims, skipped: @skipped,
        released_bytes: @released_bytes, wait: @wait }
    end

    private

    # One malloc_trim(0), counted; the bytes it released.
    def trim
      released = [BloatProbe.trim.released_bytes, 0].max
      @trims += 1
      @released_bytes += released
      released
    end

    # At the tick after a trim: wasted (half of it back already) doubles the wait, kept
    # brings it back to one interval. Half an interval of slack for the timer's jitter.
    def judge_last_trim
      return unless @last_trim

      at, released, rss_after = @last_trim
      @last_trim = nil
      wasted = (BloatProbe.memory.rss - rss_after) * 2 >= released
      @wait = wasted ? [@wait * 2, MAX_WAIT].min : 1
      @next_look = at + ((@wait - 0.5) * @interval)
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    def worth_it?(diagnosis)
      diagnosis.freeable? && diagnosis.trimmable.to_i >= @min_trimmable
    end

    def thread_name = "bloat_probe-trimmer"

    # A trim right at start would find nothing freed yet.
    def work_first? = false
  end
end
