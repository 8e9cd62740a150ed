# frozen_string_literal: true

require "json"

module AllocatorBench
  # The table a user reads to choose a remedy, and the JSON and SVG beside it.
  class Report
    MEMORY_COLUMNS = {
      rss_start: "RSS start", rss_peak: "RSS peak", rss_end_of_load: "RSS end", rss_after_idle: "RSS idle"
    }.freeze

    attr_reader :rows

    # rate: what the throughput counts, "req/s" or "jobs/s".
    def initialize(runs, settings, rate: "req/s")
      @runs = runs
      @settings = settings
      @rate = rate
      @rows = runs.group_by { |run| run[:config] }.map { |name, group| summarise(name, group) }
    end

    def table
      headers = ["config", @rate, "p50 ms", "p99 ms", *MEMORY_COLUMNS.values, "arenas", "in use", "free", "RSS/in use",
                 "verdict"]
      body = @rows.map do |row|
        next [row[:config], "skipped: #{row[:skipped]}"] if row[:skipped]
        next [row[:config], "failed: #{row[:failed]}"] if row[:failed]

        [row[:config], fmt(row, :rps, "%.0f"), fmt(row, :p50_ms, "%.0f"), fmt(row, :p99_ms, "%.0f"),
         *MEMORY_COLUMNS.keys.map { |key| fmt(row, key, :mb) },
         fmt(row, :arena_count, "%d"), fmt(row, :in_use, :mb), fmt(row, :free, :mb), fmt(row, :rss_per_in_use, "%.1f"),
         verdicts(row)]
      end
      render(headers, body) + "\n" + ratio_table
    end

    def ratio_table
      base = @rows.find { |row| row[:config] == "glibc" && !row[:skipped] && !row[:failed] }
      return "(no glibc row: no ratios)\n" unless base

      headers = ["× glibc", *MEMORY_COLUMNS.values, "in use", "free", @rate]
      body = @rows.reject { |row| row[:skipped] || row[:failed] }.map do |row|
        [row[:config], *(MEMORY_COLUMNS.keys + %i[in_use free rps]).map { |key| ratio(row, base, key) }]
      end
      render(headers, body)
    end

    # Two or three sentences that say what this run showed, each from figures it measured;
    # a sentence whose figures are missing (a skipped glibc or arena2) is left out.
    def findings
      done = @rows.reject { |row| row[:skipped] || row[:failed] }
      glibc = done.find { |row| row[:config] == "glibc" }
      arena2 = done.find { |row| row[:config] == "arena2" }
      [lowest_after_idle(done, glibc), glibc_overhead(glibc), glibc_against_arena2(glibc, arena2)].compact
    end

    def to_h
      { settings: @settings, findings: findings, rows: @rows, runs: @runs }
    end

    def write_json(path)
      File.write(path, JSON.pretty_generate(to_h))
    end

    private

    def lowest_after_idle(done, glibc)
      best = done.select { |row| row[:rss_after_idle] }.min_by { |row| row[:rss_after_idle] }
      return unless best

      sentence = "Lowest RSS after the idle tail: #{best[:config]}, #{mb(best[:rss_after_idle])} MB"
      if glibc && best != glibc && glibc[:rss_after_idle] && glibc[:rps] && best[:rps]
        sentence += format(" (%.2f× glibc's %s MB), at %.0f %s against glibc's %.0f (%.2f×)",
                           best[:rss_after_idle].fdiv(glibc[:rss_after_idle]), mb(glibc[:rss_after_idle]),
                           best[:rps], @rate, glibc[:rps], best[:rps].fdiv(glibc[:rps]))
      end
      "#{sentence}."
    end

    def glibc_overhead(glibc)
      return unless glibc && glibc[:rss_per_in_use] && glibc[:in_use] && glibc[:free]

      format("glibc's RSS was %.1f× the memory in use in its arenas at the end (%s MB in use, %s MB free " \
             "inside %d arenas).", glibc[:rss_per_in_use], mb(glibc[:in_use]), mb(glibc[:free]), glibc[:arena_count])
    end

    def glibc_against_arena2(glibc, arena2)
      return unless glibc && arena2 && glibc[:rss_end_of_load] && arena2[:rss_end_of_load]&.positive?

      format("At the end of the load glibc's RSS was %.2f× arena2's (MALLOC_ARENA_MAX=2): %s MB against %s MB.",
             glibc[:rss_end_of_load].fdiv(arena2[:rss_end_of_load]), mb(glibc[:rss_end_of_load]),
             mb(arena2[:rss_end_of_load]))
    end

    def mb(bytes)
      format("%.0f", bytes / 1e6)
    end

    # One row per configuration: the median over REPEAT runs, with min and max.
    def summarise(name, group)
      done = group.reject { |run| run[:skipped] || run[:failed] }
      return { config: name, skipped: group.first[:skipped] } if group.first[:skipped]
      return { config: name, failed: group.find { |run| run[:failed] }[:failed] } if done.empty?

      keys = %i[rps p50_ms p99_ms arena_count in_use free rss_per_in_use errors] + MEMORY_COLUMNS.keys
      verdicts = done.filter_map { |run| run[:verdict] }.tally
      keys.each_with_object({ config: name, runs: done.size, verdicts: verdicts }) do |key, row|
        values = done.map { |run| run[key] }.compact.sort
        next if values.empty?

        row[key] = median(values)
        row[:"#{key}_range"] = [values.first, values.last] if values.size > 1
      end
    end

    # BloatProbe.diagnose's verdict after the idle tail; "healthy ×2, live_native" when
    # the rounds disagree.
    def verdicts(row)
      return "-" if row[:verdicts].nil? || row[:verdicts].empty?

      row[:verdicts].sort_by { |_verdict, count| -count }
                    .map { |verdict, count| count > 1 && row[:verdicts].size > 1 ? "#{verdict} ×#{count}" : verdict }
                    .join(", ")
    end

    def median(sorted)
      mid = sorted.size / 2
      sorted.size.odd? ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0
    end

    def fmt(row, key, style)
      value = row[key]
      return "-" if value.nil?

      one = ->(v) { style == :mb ? mb(v) : format(style, v) }
      range = row[:"#{key}_range"]
      range ? "#{one.call(value)} (#{one.call(range[0])}–#{one.call(range[1])})" : one.call(value)
    end

    def ratio(row, base, key)
      return "-" unless row[key] && base[key]&.positive?

      format("%.2f", row[key].to_f / base[key])
    end

    def render(headers, body)
      # A two-cell row (skipped, failed) spills over the other columns: it sets no width.
      full = body.reject { |r| r.size == 2 }
      widths = headers.each_index.map do |i|
        ([headers[i]] + (i.zero? ? body : full).map { |r| r[i].to_s }).map(&:length).max
      end
      line = ->(cells) { cells.each_with_index.map { |c, i| i.zero? ? c.to_s.ljust(widths[i]) : c.to_s.rjust(widths[i]) }.join("  ").rstrip }
      [line.call(headers), widths.map { |w| "-" * w }.join("  "), *body.map { |r| r.size == 2 ? "#{r[0].ljust(widths[0])}  #{r[1]}" : line.call(r) }].join("\n") + "\n"
    end
  end
end
