# frozen_string_literal: true

require_relative "svg_chart"

module AllocatorBench
  # The choice at a glance, as SVG: each configuration's RSS after the idle tail (median,
  # with its min–max when REPEAT > 1) against its throughput in the left panel and against
  # its p99 latency in the right. Lower is leaner; right is faster on the left panel, slower
  # on the right one.
  class TradeoffChart
    PANEL = { width: 430, height: 380 }.freeze
    MARGIN = { left: 70, right: 80, top: 50, bottom: 50 }.freeze
    COLOURS = SvgChart::COLOURS

    # rows: Report#rows (medians); rate: "req/s" or "jobs/s".
    def initialize(rows, title:, rate:)
      @rows = rows.select { |row| row.median(:rss_after_idle) && row.median(:rps) && row.median(:p99_ms) }
      @title = title
      @rate = rate
    end

    def to_s
      width = 2 * (MARGIN[:left] + PANEL[:width] + MARGIN[:right])
      height = MARGIN[:top] + PANEL[:height] + MARGIN[:bottom]
      max_mb = Svg.ceiling(@rows.map { |row| row.figure(:rss_after_idle).high / 1e6 }.max || 1)
      parts = [Svg.open_tag(width, height),
               %(<rect width="100%" height="100%" fill="white"/>),
               %(<text x="#{width / 2}" y="22" text-anchor="middle" font-size="15">#{Svg.esc(@title)}</text>)]
      parts << panel(0, :rps, "throughput (#{@rate}), more is better", max_mb)
      parts << panel(1, :p99_ms, "p99 latency (ms), less is better", max_mb)
      parts << "</svg>\n"
      parts.join("\n")
    end

    private

    def panel(index, key, label, max_mb)
      left = index * (MARGIN[:left] + PANEL[:width] + MARGIN[:right]) + MARGIN[:left]
      bottom = MARGIN[:top] + PANEL[:height]
      max_x = Svg.ceiling(@rows.map { |row| row.median(key) }.max || 1)
      x = ->(value) { (left + value / max_x * PANEL[:width]).round(1) }
      y = ->(mb) { (bottom - mb / max_mb * PANEL[:height]).round(1) }
      out = [%(<line x1="#{left}" y1="#{bottom}" x2="#{left + PANEL[:width]}" y2="#{bottom}" stroke="black"/>),
             %(<line x1="#{left}" y1="#{MARGIN[:top]}" x2="#{left}" y2="#{bottom}" stroke="black"/>),
             %(<text x="#{left + PANEL[:width] / 2}" y="#{bottom + 36}" text-anchor="middle">#{Svg.esc(label)}</text>),
             %(<text x="#{left - 50}" y="#{(MARGIN[:top] + bottom) / 2}" text-anchor="middle" ) +
               %(transform="rotate(-90 #{left - 50} #{(MARGIN[:top] + bottom) / 2})">RSS after idle (MB)</text>)]
      (1..5).each do |i|
        mb = max_mb * i / 5.0
        out << %(<line x1="#{left}" y1="#{y.call(mb)}" x2="#{left + PANEL[:width]}" y2="#{y.call(mb)}" stroke="#ddd"/>)
        out << %(<text x="#{left - 6}" y="#{y.call(mb) + 4}" text-anchor="end">#{mb.round}</text>)
        value = max_x * i / 5.0
        out << %(<text x="#{x.call(value)}" y="#{bottom + 16}" text-anchor="middle">#{tick(value)}</text>)
      end
      @rows.each_with_index do |row, i|
        colour = COLOURS[i % COLOURS.size]
        px = x.call(row.median(key))
        rss = row.figure(:rss_after_idle)
        if rss.range?
          out << %(<line x1="#{px}" y1="#{y.call(rss.low / 1e6)}" x2="#{px}" y2="#{y.call(rss.high / 1e6)}" ) +
                 %(stroke="#{colour}"/>)
        end
        py = y.call(rss.median / 1e6)
        out << %(<circle class="point" cx="#{px}" cy="#{py}" r="5" fill="#{colour}">) +
               %(<title>#{Svg.esc(row.config)}</title></circle>)
        out << %(<text x="#{px + 8}" y="#{py - 6}" fill="#{colour}">#{Svg.esc(row.config)}</text>)
      end
      out.join("\n")
    end

    def tick(value)
      value < 10 ? format("%.1f", value) : value.round.to_s
    end
  end
end
