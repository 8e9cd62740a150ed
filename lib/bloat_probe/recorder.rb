# frozen_string_literal: true

module BloatProbe
  # One moment of the process's memory, as the history keeps it and the dashboard charts
  # it: RSS, memory in use (malloc'd and not freed, the Ruby heap's pages not counted),
  # free memory the allocator holds and is still resident, the Ruby heap, the arenas.
  Sample = Reading.define(:time, :rss, :malloc_in_use, :free, :arena_count, :ruby_heap,
                          bytes: %i[rss malloc_in_use free ruby_heap])

  # What the reporter, the metrics endpoint and the dashboard share in one process: the
  # latest moment (readings and the diagnosis of those very readings) and a bounded
  # history of samples, from which, once the warm-up has passed, the trend is drawn.
  #
  # A moment reads malloc_info, statm, smaps and smaps_rollup: milliseconds in a large
  # process. The Reporter takes one each interval; a scrape or a view reuses the latest
  # while it is younger than `diagnosis_interval` seconds.
  class Recorder
    DIAGNOSIS_INTERVALS = 1.0..86_400.0
    DIAGNOSIS_INTERVAL = 60
    WARMUPS = 0.0..604_800.0
    # Ten minutes: caches fill and Puma's threads meet their first requests.
    WARMUP = 600
    HISTORY_SIZES = 2..100_000

    # The readings of one moment and their diagnosis.
    Moment = Struct.new(:stats, :memory, :cgroup, :diagnosis, :sample, keyword_init: true)

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
    end

    # Reads the process now; when record, the sample joins the history (the Reporter's
    # ticks). Returns the Moment.
    def take(record: true)
      stats = BloatProbe.arena_stats
      memory = BloatProbe.memory(detail: true)
      cgroup = BloatProbe.cgroup
      figures = @examiner.figures(stats, memory)
      sample = Sample.new(Time.now.to_f, memory.rss, figures.malloc_in_use, figures.free, stats.arena_count,
                          figures.ruby_heap)
      @lock.synchronize do
        remember(sample) if record
        diagnosis = @examiner.diagnosis(stats: stats, memory: memory, figures: figures, trend: trend_locked(sample),
                                        cgroup: cgroup)
        @latest = Moment.new(stats: stats, memory: memory, cgroup: cgroup, diagnosis: diagnosis, sample: sample)
      end
    end

    # The latest moment, or a fresh one where it is older than diagnosis_interval.
    def moment
      latest = @lock.synchronize { @latest }
      return latest if latest && Time.now.to_f - latest.sample.time < @diagnosis_interval

      take(record: false)
    end

    def diagnosis
      moment.diagnosis
    end

    # The trend since the warm-up, or nil during it and until enough samples follow.
    def trend
      @lock.synchronize { trend_locked(nil) }
    end

    # Seconds of warm-up left, 0 once it has passed.
    def warming_for
      [@warm_from - Time.now.to_f, 0].max
    end

    # Oldest first.
    def history
      @lock.synchronize { @history.dup }
    end

    private

    def remember(sample)
      @history << sample
      @history.shift if @history.size > @history_size
    end

    # The samples after the warm-up, with `current` when it is not in the history.
    def trend_locked(current)
      warm = @history.select { |sample| sample.time >= @warm_from }
      warm << current if current && !warm.include?(current) && current.time >= @warm_from
      Trend.of(warm)
    end
  end
end
