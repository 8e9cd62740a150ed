# frozen_string_literal: true

module BloatProbe
  # What the reporter, the metrics endpoint and the dashboard share in one process: the
  # latest moment (readings and the diagnosis of those very readings) and a bounded
  # history of samples, from which, once the warm-up has passed, the trend is drawn.
  #
  # A moment reads malloc_info, statm, smaps and smaps_rollup: milliseconds in a large
  # process. The Reporter takes one each interval (the guard's, where it is recent); a scrape
  # or a view reuses the latest while it is younger than `diagnosis_interval` seconds.
  class Recorder
    DIAGNOSIS_INTERVALS = 1.0..86_400.0
    DIAGNOSIS_INTERVAL = 60
    WARMUPS = 0.0..604_800.0
    # Ten minutes: caches fill and Puma's threads meet their first requests.
    WARMUP = 600
    HISTORY_SIZES = 2..100_000
    # The wall clock may drift against the monotonic one by this much between two moments;
    # more is a step (NTP, a VM resumed), which the history's times are moved by.
    CLOCK_STEP = 1.0

    attr_reader :examiner, :diagnosis_interval, :history_size, :warmup

    def initialize(thresholds: {}, diagnosis_interval: DIAGNOSIS_INTERVAL, history_size: 360, warmup: WARMUP)
      @examiner = Examiner.new(thresholds: thresholds)
      @diagnosis_interval = BloatProbe.check_number("diagnosis_interval", diagnosis_interval, DIAGNOSIS_INTERVALS,
                                                    unit: " seconds")
      @history_size = BloatProbe.check_number("history_size", history_size, HISTORY_SIZES, Integer)
      @warmup = BloatProbe.check_number("warmup", warmup, WARMUPS, unit: " seconds")
      @warm_from = Time.now.to_f + @warmup
      @history = []
      @lock = Mutex.new
      @latest = nil
      @recorded = nil
      @latest_at = nil
      @wall_offset = wall_offset
      @clock_step = nil
    end

    # Reads the process now, diagnosed with the trend since the warm-up; when record, its
    # sample joins the history (the Reporter's ticks). Returns the Moment. reuse_within:
    # seconds; a moment taken that recently (by the guard, on its own thread) is used again
    # rather than the process read twice: each read walks every free chunk of every arena.
    def take(record: true, reuse_within: 0)
      @lock.synchronize do
        stepped = follow_clock_step
        moment = (@latest if !stepped && @latest && monotonic - @latest_at < reuse_within) || read
        remember(moment.sample) if record && !moment.equal?(@recorded)
        @recorded = moment if record
        moment
      end
    end

    # The latest moment, or a fresh one where it is older than diagnosis_interval: by the
    # monotonic clock, which a step of the wall clock (NTP, a VM resumed) does not move.
    def moment
      latest, taken_at = @lock.synchronize { [@latest, @latest_at] }
      return latest if latest && monotonic - taken_at < @diagnosis_interval

      take(record: false)
    end

    def diagnosis
      moment.diagnosis
    end

    # A step of the wall clock seen since the last call (a ReadingError of the reading
    # "clock" that says by how much), once; nil where there was none.
    def clock_step!
      @lock.synchronize { @clock_step.tap { @clock_step = nil } }
    end

    # Oldest first.
    def history
      @lock.synchronize { @history.dup }
    end

    private

    # A moment read now, under the lock.
    def read
      moment = @examiner.take(warm: @history.select { |sample| sample.time >= @warm_from }, warm_from: @warm_from,
                              boot_in_use: @boot_in_use)
      # The first moment is what the process booted with: later ones weigh memory in use
      # against it.
      @boot_in_use ||= moment.diagnosis.malloc_in_use
      @latest_at = monotonic
      @latest = moment
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    def wall_offset
      Time.now.to_f - Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    # Where the wall clock stepped since the last moment, the history and the end of the
    # warm-up move with it: the trend is drawn through the time that passed, not the step.
    # True where it stepped.
    def follow_clock_step
      offset = wall_offset
      step = offset - @wall_offset
      @wall_offset = offset
      return false if step.abs <= CLOCK_STEP

      @history.map! { |sample| sample.dup.tap { |moved| moved.time += step }.freeze }
      @warm_from += step
      @clock_step = ReadingError.new(format("the wall clock stepped by %+.1f s; the history's times moved with it",
                                            step), reading: "clock")
    end

    def remember(sample)
      @history << sample
      @history.shift if @history.size > @history_size
    end
  end
end
