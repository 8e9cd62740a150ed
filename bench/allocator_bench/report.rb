# frozen_string_literal: true

require "json"
require_relative "records"

module AllocatorBench
  # The table a user reads to choose a remedy, and the JSON and SVG beside it.
  class Report
    MEMORY_COLUMNS = { rss_start: "start", rss_peak: "peak", rss_end_of_load: "end", rss_after_idle: "idle" }.freeze
    # In cluster mode: the workers' shared fraction, and their mean private memory.
    CLUSTER_COLUMNS = {
      shared_fraction_start: "shared start", shared_fraction_end_of_load: "shared end",
      shared_fraction_after_idle: "shared idle", worker_private_end_of_load: "private/worker end",
      worker_private_after_idle: "private/worker idle"
    }.freeze

    attr_reader :rows, :runs, :settings, :rate

    # A report as its JSON has it (a run's, or a published one under docs/): its runs and
    # settings; the rows and findings are worked out again from the runs.
    def self.from_h(hash)
      settings = hash.fetch(:settings)
      # Reports before 2026-11-30 named no rate: a Sidekiq run's workload says so.
      rate = settings[:rate] || (settings[:workload].to_s.include?("Sidekiq") ? "jobs/s" : "req/s")
      new(hash.fetch(:runs).map { |run| Run.from_h(run) }, settings, rate: rate)
    end

    # runs: the run records (Measured, Skipped, Failed); rate: what the throughput
    # counts, "req/s" or "jobs/s".
    def initialize(runs, settings, rate: "req/s")
      @runs = runs
      @settings = settings
      @rate = rate
      @rows = runs.group_by(&:config).map { |name, group| Row.summarise(name, group) }
    end

    def table
      cluster = cluster_cells
      "#{render(*table_cells)}\n#{ratio_table}#{"\n#{render(*cluster)}" if cluster}"
    end

    # What the memory figures are: one process's RSS, or in cluster mode (WORKERS) the sum
    # of the master's and workers' PSS, what the container is charged.
    def memory
      cluster? ? "PSS sum" : "RSS"
    end

    def cluster?
      @settings[:workers].to_i.positive?
    end

    # In cluster mode, per configuration: the workers' shared fraction of their RSS, and
    # their mean private memory (nil in single mode).
    def cluster_cells
      return unless cluster?

      body = measured_rows.map do |row|
        [row.config, *CLUSTER_COLUMNS.keys.map { |key| fmt(row, key, key.start_with?("shared") ? :percent : :mb) }]
      end
      [["workers", *CLUSTER_COLUMNS.values], body]
    end

    # The table as text cells: headers, then one row per configuration (two cells for one
    # that was skipped or failed).
    def table_cells
      headers = ["config", @rate, "p50 ms", "p99 ms", *MEMORY_COLUMNS.values.map do |when_|
                                                        "#{memory} #{when_}"
                                                      end, "arenas", "in use", "free", "RSS/in use",
                 "verdict"]
      body = @rows.map do |row|
        next [row.config, "skipped: #{row.skipped}"] if row.skipped
        next [row.config, "failed: #{row.failed}"] if row.failed

        [row.config, fmt(row, :rps, "%.0f"), fmt(row, :p50_ms, "%.0f"), fmt(row, :p99_ms, "%.0f"),
         *MEMORY_COLUMNS.keys.map { |key| fmt(row, key, :mb) },
         fmt(row, :arena_count, "%d"), fmt(row, :in_use, :mb), fmt(row, :free, :mb), fmt(row, :rss_per_in_use, "%.1f"),
         verdicts(row)]
      end
      [headers, body]
    end

    def ratio_table
      cells = ratio_cells
      cells ? render(*cells) : "(no glibc row: no ratios)\n"
    end

    # Each measured configuration's figures as a ratio to glibc's, or nil without glibc.
    def ratio_cells
      base = measured_rows.find { |row| row.config == "glibc" }
      return unless base

      headers = ["× glibc", *MEMORY_COLUMNS.values.map { |when_| "#{memory} #{when_}" }, "in use", "free", @rate]
      body = measured_rows.map do |row|
        [row.config, *(MEMORY_COLUMNS.keys + %i[in_use free rps]).map { |key| ratio(row, base, key) }]
      end
      [headers, body]
    end

    # Two or three sentences that say what this run showed, each from figures it measured;
    # a sentence whose figures are missing (a skipped glibc or arena2) is left out.
    def findings
      glibc = measured_rows.find { |row| row.config == "glibc" }
      arena2 = measured_rows.find { |row| row.config == "arena2" }
      warmup = measured_rows.find { |row| row.config == "warmup" }
      [lowest_after_idle(measured_rows, glibc), glibc_overhead(glibc), glibc_against_arena2(glibc, arena2),
       glibc_raiser(glibc), shared_with_warmup(glibc, warmup)].compact
    end

    def measured_rows
      @rows.select(&:measured?)
    end

    # Per configuration, the three names that raised the arenas' high-water marks most
    # over its rounds, with each one's share of all that was raised, and the attributed
    # total against malloc_info's rise.
    def raisers
      measured_rows.select { |row| row.raisers&.sum { |entry| entry[:raised_bytes] }&.positive? }.map do |row|
        total = row.raisers.sum { |entry| entry[:raised_bytes] }
        top = row.raisers.first(3).map do |entry|
          share = 100.0 * entry[:raised_bytes] / [total, 1].max
          format("%s %s MB (%.0f%%)", entry[:name], mb(entry[:raised_bytes]), share)
        end
        share = row.attributed_share ? format("; %.2f× malloc_info's rise", row.attributed_share) : ""
        "#{row.config}: #{top.join(", ")}#{share}"
      end
    end

    def to_h
      { settings: @settings.merge(rate: @rate), findings: findings, rows: @rows.map(&:to_h), runs: @runs.map(&:to_h) }
    end

    def write_json(path)
      File.write(path, JSON.pretty_generate(to_h))
    end

    private

    def lowest_after_idle(done, glibc)
      best = done.select { |row| row.median(:rss_after_idle) }.min_by { |row| row.median(:rss_after_idle) }
      return unless best

      sentence = "Lowest #{memory} after the idle tail: #{best.config}, #{mb(best.median(:rss_after_idle))} MB"
      if glibc && best != glibc && glibc.median(:rss_after_idle) && glibc.median(:rps) && best.median(:rps)
        sentence += format(" (%.2f× glibc's %s MB), at %.0f %s against glibc's %.0f (%.2f×)",
                           best.median(:rss_after_idle).fdiv(glibc.median(:rss_after_idle)),
                           mb(glibc.median(:rss_after_idle)), best.median(:rps), @rate, glibc.median(:rps),
                           best.median(:rps).fdiv(glibc.median(:rps)))
      end
      "#{sentence}."
    end

    def glibc_overhead(glibc)
      return unless glibc&.median(:rss_per_in_use) && glibc&.median(:in_use) && glibc&.median(:free)

      format("glibc's RSS was %.1f× the memory in use in its arenas at the end (%s MB in use, %s MB free " \
             "inside %d arenas).", glibc.median(:rss_per_in_use), mb(glibc.median(:in_use)), mb(glibc.median(:free)),
             glibc.median(:arena_count))
    end

    def glibc_against_arena2(glibc, arena2)
      return unless glibc && arena2 && glibc.median(:rss_end_of_load) && arena2.median(:rss_end_of_load)&.positive?

      format("At the end of the load glibc's #{memory} was %.2f× arena2's (MALLOC_ARENA_MAX=2): %s MB against %s MB.",
             glibc.median(:rss_end_of_load).fdiv(arena2.median(:rss_end_of_load)), mb(glibc.median(:rss_end_of_load)),
             mb(arena2.median(:rss_end_of_load)))
    end

    def glibc_raiser(glibc)
      top = glibc&.raisers&.first or return
      total = glibc.raisers.sum { |entry| entry[:raised_bytes] }
      return unless total.positive?

      format("Under glibc, %s raised the arenas' high-water marks most: %s MB, %.0f%% of all that requests " \
             "or jobs raised.", top[:name], mb(top[:raised_bytes]), 100.0 * top[:raised_bytes] / total)
    end

    # Cluster mode: what running Process.warmup (or GC, compaction and a trim) in the master
    # before fork did to how much the workers share, measured beside glibc's defaults.
    def shared_with_warmup(glibc, warmup)
      keys = %i[shared_fraction_start shared_fraction_after_idle rss_after_idle]
      return unless glibc && warmup && keys.all? { |key| glibc.median(key) && warmup.median(key) }

      format("With warmup before fork the workers shared %.0f%% of their RSS at the start against glibc's " \
             "%.0f%%, and %.0f%% against %.0f%% after the idle tail; PSS sum after idle %s MB against %s MB.",
             *%i[shared_fraction_start shared_fraction_after_idle].flat_map do |key|
               [warmup, glibc].map do |row|
                 100 * row.median(key)
               end
             end,
             mb(warmup.median(:rss_after_idle)), mb(glibc.median(:rss_after_idle)))
    end

    def mb(bytes)
      format("%.0f", bytes / 1e6)
    end

    # BloatProbe.diagnose's verdict after the idle tail; "healthy ×2, live_native" when
    # the rounds disagree.
    def verdicts(row)
      verdicts = row.verdicts
      return "-" if verdicts.nil? || verdicts.empty?

      verdicts.sort_by { |_verdict, count| -count }
              .map { |verdict, count| count > 1 && verdicts.size > 1 ? "#{verdict} ×#{count}" : verdict }
              .join(", ")
    end

    def fmt(row, key, style)
      figure = row.figure(key)
      return "-" if figure.nil?

      one = lambda do |v|
        case style
        when :mb then mb(v)
        when :percent then format("%.0f%%", 100 * v)
        else format(style, v)
        end
      end
      return one.call(figure.median) unless figure.range?

      "#{one.call(figure.median)} (#{one.call(figure.low)}–#{one.call(figure.high)})"
    end

    def ratio(row, base, key)
      return "-" unless row.median(key) && base.median(key)&.positive?

      format("%.2f", row.median(key).to_f / base.median(key))
    end

    def render(headers, body)
      # A two-cell row (skipped, failed) spills over the other columns: it sets no width.
      full = body.reject { |cells| cells.size == 2 }
      widths = headers.each_index.map do |i|
        ([headers[i]] + (i.zero? ? body : full).map { |cells| cells[i].to_s }).map(&:length).max
      end
      line = lambda do |cells|
        next "#{cells[0].ljust(widths[0])}  #{cells[1]}" if cells.size == 2

        cells.each_with_index.map { |cell, i| i.zero? ? cell.to_s.ljust(widths[i]) : cell.to_s.rjust(widths[i]) }
             .join("  ").rstrip
      end
      "#{[line.call(headers), widths.map { |width| "-" * width }.join("  "), *body.map(&line)].join("\n")}\n"
    end
  end
end
