# frozen_string_literal: true

module AllocatorBench
  # What one configuration did in one round: Measured, Skipped (its library is missing, or
  # its Ruby has no YJIT) or Failed (its server did not come up). Each one's to_h is its
  # entry in the JSON's "runs"; Run.from_h reads such an entry back.
  module Run
    def self.from_h(hash)
      return Skipped.new(config: hash[:config], round: hash[:round], reason: hash[:skipped]) if hash[:skipped]
      return Failed.new(config: hash[:config], round: hash[:round], reason: hash[:failed]) if hash[:failed]

      Measured.new(**hash.slice(*Measured.members))
    end
  end

  Skipped = Struct.new(:config, :round, :reason, keyword_init: true)
  Failed = Struct.new(:config, :round, :reason, keyword_init: true)

  class Skipped
    def measured? = false

    def to_h = { config: config, round: round, skipped: reason }
  end

  class Failed
    def measured? = false

    def to_h = { config: config, round: round, failed: reason }
  end

  # Sizes in bytes, latency in ms, throughput per second. The arena figures are glibc's,
  # nil under another allocator; samples are { t:, rss:, phase: } every sample interval.
  # attribution: the endpoints or jobs that raised the arenas most during the run
  # ({ name:, calls:, raised_bytes: }, largest first); attributed_rise, what
  # they raised in all; arena_rise, how far malloc_info says the high-water marks rose.
  # In cluster mode (WORKERS) the rss_ figures are the sum of the master's and workers' PSS,
  # the arena figures and verdict are the worker that answered /bloat/stats, and the
  # cluster's own are the workers' shared fraction (of their RSS), their mean private
  # memory, and each one's after the idle tail (workers_private).
  Measured = Struct.new(:config, :round, :server_pid, :redis_pid, :rss_start, :rss_end_of_load, :rss_after_idle,
                        :rss_peak, :rps, :p50_ms, :p99_ms, :requests, :errors, :allocator, :allocator_version,
                        :verdict, :arena_count, :in_use, :free, :rss_per_in_use, :arenas, :trimmer, :samples,
                        :attribution, :attributed_rise, :arena_rise, :shared_fraction_start,
                        :shared_fraction_end_of_load, :shared_fraction_after_idle, :worker_private_end_of_load,
                        :worker_private_after_idle, :workers_private, keyword_init: true)

  class Measured
    def measured? = true

    def to_h = super.compact
  end

  # One figure over a configuration's rounds: the median, with the lowest and highest.
  Figure = Struct.new(:median, :low, :high, :rounds)

  class Figure
    def self.of(values)
      sorted = values.compact.sort
      return if sorted.empty?

      mid = sorted.size / 2
      median = sorted.size.odd? ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0
      new(median, sorted.first, sorted.last, sorted.size)
    end

    # Whether there was more than one round to range over.
    def range? = rounds > 1
  end

  # A configuration's line in the table: its figures over the rounds, the verdicts seen
  # (verdict => rounds), or why it has none (skipped, failed).
  # raisers: the names that raised the arenas most over all rounds ({ name:, raised_bytes: },
  # largest first); attributed_share: what they raised in all ÷ malloc_info's rise (glibc).
  Row = Struct.new(:config, :runs, :verdicts, :figures, :raisers, :attributed_share, :skipped, :failed,
                   keyword_init: true)

  class Row
    FIGURES = %i[rps p50_ms p99_ms arena_count in_use free rss_per_in_use errors
                 rss_start rss_peak rss_end_of_load rss_after_idle
                 shared_fraction_start shared_fraction_end_of_load shared_fraction_after_idle
                 worker_private_end_of_load worker_private_after_idle].freeze

    # The runs of one configuration.
    def self.summarise(name, runs)
      return new(config: name, skipped: runs.first.reason) if runs.first.is_a?(Skipped)

      done = runs.select(&:measured?)
      return new(config: name, failed: runs.find { |run| run.is_a?(Failed) }.reason) if done.empty?

      new(config: name, runs: done.size, verdicts: done.filter_map(&:verdict).tally,
          figures: FIGURES.to_h { |key| [key, Figure.of(done.map { |run| run[key] })] }.compact,
          raisers: raisers(done), attributed_share: attributed_share(done))
    end

    def self.raisers(runs)
      totals = Hash.new(0)
      runs.flat_map { |run| run.attribution.to_a }.each { |entry| totals[entry[:name]] += entry[:raised_bytes] }
      totals.sort_by { |_name, bytes| -bytes }.map { |name, bytes| { name: name, raised_bytes: bytes } }
    end

    def self.attributed_share(runs)
      measured = runs.select(&:arena_rise)
      rise = measured.sum(&:arena_rise)
      measured.sum(&:attributed_rise).fdiv(rise) if rise.positive?
    end

    def measured? = skipped.nil? && failed.nil?

    # The median of a figure, nil where it was not measured.
    def median(key)
      figures&.dig(key)&.median
    end

    def figure(key)
      figures&.dig(key)
    end

    # As the JSON's "rows" have it: each figure's median, and its [min, max] as key_range.
    def to_h
      return { config: config, skipped: skipped } if skipped
      return { config: config, failed: failed } if failed

      row = { config: config, runs: runs, verdicts: verdicts, raisers: raisers, attributed_share: attributed_share }
      figures.each_with_object(row.compact) do |(key, figure), hash|
        hash[key] = figure.median
        hash[:"#{key}_range"] = figure.minmax if figure.range?
      end
    end
  end
end
