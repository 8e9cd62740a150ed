# frozen_string_literal: true

module BloatProbe
  # One moment of the process's memory, as the dashboard charts it.
  Sample = Reading.define(:time, :rss, :malloc_in_use, :free, :arena_count, bytes: %i[rss malloc_in_use free])

  # What the reporter, the metrics endpoint and the dashboard share in one process: the
  # latest diagnosis and a bounded history of samples.
  #
  # A sample (statm and malloc_info: about 0.4 ms with 16 fragmented arenas) is cheap
  # enough for every tick and every scrape. A diagnosis also reads /proc/self/smaps and
  # smaps_rollup, which cost milliseconds in a large process, so it is taken again only
  # when the last one is older than `diagnosis_interval` seconds.
  class Recorder
    DIAGNOSIS_INTERVALS = 1.0..86_400.0
    DIAGNOSIS_INTERVAL = 60
    HISTORY_SIZES = 2..100_000

    attr_reader :examiner, :diagnosis_interval, :history_size

    def initialize(thresholds: {}, diagnosis_interval: DIAGNOSIS_INTERVAL, history_size: 360)
      @examiner = Examiner.new(thresholds: thresholds)
      @diagnosis_interval = BloatProbe.check_number("diagnosis_interval", diagnosis_interval, DIAGNOSIS_INTERVALS,
                                                    unit: " seconds")
      @history_size = BloatProbe.check_number("history_size", history_size, HISTORY_SIZES, Integer)
      @history = []
      @lock = Mutex.new
      @diagnosis = nil
      @diagnosed_at = nil
    end

    # The readings of this moment, [ArenaStats, Memory], kept in the history when record.
    def sample(record: true)
      stats = BloatProbe.arena_stats
      memory = BloatProbe.memory
      if record
        remember(Sample.new(Time.now.to_f, memory.rss, stats.malloc_in_use, stats.malloc_free,
                            stats.arena_count))
      end
      [stats, memory]
    end

    # The latest diagnosis, taken afresh when older than diagnosis_interval.
    def diagnosis
      now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      @lock.synchronize do
        if @diagnosis.nil? || now - @diagnosed_at >= @diagnosis_interval
          @diagnosis = @examiner.diagnosis
          @diagnosed_at = now
        end
        @diagnosis
      end
    end

    # Oldest first.
    def history
      @lock.synchronize { @history.dup }
    end

    private

    def remember(sample)
      @lock.synchronize do
        @history << sample
        @history.shift if @history.size > @history_size
      end
    end
  end
end
