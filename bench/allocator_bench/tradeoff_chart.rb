# frozen_string_literal: true

require_relative "configuration"
require_relative "svg"

module AllocatorBench
  # The choice at a glance, as SVG: each configuration's RSS after the idle tail (median,
  # with a whisker from the lowest to the highest round when REPEAT > 1) against its
  # throughput in the left panel and against its p99 latency in the right. Lower is
  # leaner; right is faster on the left panel, slower on the right one. Each label is put
  # where it overlaps no other label and no marker, with a leader line when it had to move
  # away from its point.
  class TradeoffChart
    PANEL = { width: 430, height: 400 }.freeze
    MARGIN = { left: 70, right: 40, top: 50, bottom: 55 }.freeze
    # How far from its point a label may go, in steps of this many pixels.
    STEPS = 8
    STEP = 16
    MARKER_BOX = 7

    # rows: Report#rows; rate: "req/s" or "jobs/s".
    def initialize(rows, title:, rate:, memory: "RSS")
      @rows = rows.select { |row| row.median(:rss_after_idle) && row.median(:rps) && row.median(:p99_ms) }
      @title = title
      @rate = rate
      @memory = memory
      @mb_ticks = Svg.ticks(@rows.map { |row| row.figure(:rss_after_idle).high / 1e6 }.max || 1)
    end

    def to_s
      width = 2 * (MARGIN[:left] + PANEL[:width] + MARGIN[:right])
      height = MARGIN[:top] + PANEL[:height] + MARGIN[:bottom]
      [Svg.open_tag(width, height), %(<rect width="100%" height="100%" fill="white"/>),
       %(<text x="#{width / 2}" y="24" text-anchor="middle" font-size="15">#{Svg.esc(@title)}</text>),
       panel(0, :rps, "throughput (#{@rate}), more is better"),
       panel(1, :p99_ms, "p99 latency (ms), less is better"), "</svg>\n"].join("\n")
    end

    private

    def panel(index, key, label)
      left = (index * (MARGIN[:left] + PANEL[:width] + MARGIN[:right])) + MARGIN[:left]
      bottom = MARGIN[:top] + PANEL[:height]
      x_ticks = Svg.ticks(@rows.map { |row| row.median(key) }.max || 1)
      x = ->(value) { (left + (value / x_ticks.last.to_f * PANEL[:width])).round(1) }
      y = ->(mb) { (bottom - (mb / @mb_ticks.last.to_f * PANEL[:height])).round(1) }
      points = @rows.map { |row| [row, x.call(row.median(key)), y.call(row.median(:rss_after_idle) / 1e6)] }
      [%(<g class="panel" data-axis="#{key}">), frame(left, bottom, label, x_ticks, x, y),
       *points.map { |row, px, _py| whisker(row, px, y) },
       *points.map { |row, px, py| Svg.marker(Configuration.look(row.config), px, py, title: row.config) },
       labels(points, Svg::Box.new(left, MARGIN[:top], left + PANEL[:width], bottom)), "</g>"].join("\n")
    end

    def frame(left, bottom, label, x_ticks, x, y)
      right = left + PANEL[:width]
      middle = (MARGIN[:top] + bottom) / 2
      grid = @mb_ticks.map do |mb|
        %(<line x1="#{left}" y1="#{y.call(mb)}" x2="#{right}" y2="#{y.call(mb)}" stroke="#e5e5e5"/>\n) +
          %(<text class="tick y" x="#{left - 6}" y="#{y.call(mb) + 4}" text-anchor="end">#{mb}</text>)
      end
      grid += x_ticks.map do |value|
        %(<text class="tick x" x="#{x.call(value)}" y="#{bottom + 16}" text-anchor="middle">#{value}</text>)
      end
      grid + [%(<line x1="#{left}" y1="#{bottom}" x2="#{right}" y2="#{bottom}" stroke="black"/>),
              %(<line x1="#{left}" y1="#{MARGIN[:top]}" x2="#{left}" y2="#{bottom}" stroke="black"/>),
              %(<text x="#{left + (PANEL[:width] / 2)}" y="#{bottom + 40}" text-anchor="middle">) +
              %(#{Svg.esc(label)}</text>),
              %(<text x="#{left - 52}" y="#{middle}" text-anchor="middle" ) +
              %(transform="rotate(-90 #{left - 52} #{middle})">#{@memory} after idle (MB)</text>)]
    end

    # From the lowest round's RSS after idle to the highest's.
    def whisker(row, px, y)
      rss = row.figure(:rss_after_idle)
      return "" unless rss.range?

      look = Configuration.look(row.config)
      %(<line class="whisker" x1="#{px}" y1="#{y.call(rss.low / 1e6)}" x2="#{px}" y2="#{y.call(rss.high / 1e6)}" ) +
        %(stroke="#{look.colour}" stroke-width="1.5"/>)
    end

    # Each label where it overlaps nothing placed so far and no marker, nearest first.
    def labels(points, area)
      taken = points.map do |_row, px, py|
        Svg::Box.new(px - MARKER_BOX, py - MARKER_BOX, px + MARKER_BOX, py + MARKER_BOX)
      end
      points.sort_by { |_row, _px, py| py }.map do |row, px, py|
        lx, ly, box = place(row.config, px, py, taken, area)
        taken << box
        look = Configuration.look(row.config)
        leader = far?(px, py, box) ? leader_line(px, py, box, look) : ""
        %(#{leader}<text class="label" x="#{lx.round(1)}" y="#{ly.round(1)}" fill="#{look.colour}">) +
          "#{Svg.esc(row.config)}</text>"
      end.join("\n")
    end

    def place(text, px, py, taken, area)
      width = Svg.text_box(0, 0, text).right
      (0..STEPS).each do |step|
        reach = step * STEP
        candidates(px, py, width, reach).each do |lx, ly|
          box = Svg.text_box(lx, ly, text)
          return [lx, ly, box] if box.inside?(area) && taken.none? { |other| other.overlaps?(box) }
        end
      end
      # Nowhere free within reach: right of the point, where the test will say so.
      [px + 9, py + 4, Svg.text_box(px + 9, py + 4, text)]
    end

    # A label further from its marker than its first place gets a leader line to it.
    def far?(px, py, box)
      Math.hypot(px - px.clamp(box.left, box.right), py - py.clamp(box.top, box.bottom)) > 12
    end

    # Right, left, above and below the point, then the four diagonals, `reach` further out.
    def candidates(px, py, width, reach)
      gap = 9
      [[px + gap + reach, py + 4], [px - gap - reach - width, py + 4],
       [px - (width / 2), py - gap - reach], [px - (width / 2), py + gap + reach + Svg::FONT_SIZE],
       [px + gap + reach, py - gap - reach], [px + gap + reach, py + gap + reach + Svg::FONT_SIZE],
       [px - gap - reach - width, py - gap - reach], [px - gap - reach - width, py + gap + reach + Svg::FONT_SIZE]]
    end

    # From the marker to the nearest point of the label's box.
    def leader_line(px, py, box, look)
      tx = px.clamp(box.left, box.right)
      ty = py.clamp(box.top, box.bottom)
      %(<line class="leader" x1="#{px}" y1="#{py}" x2="#{tx.round(1)}" y2="#{ty.round(1)}" ) +
        %(stroke="#{look.colour}" stroke-width="0.8" stroke-opacity="0.7"/>\n)
    end
  end
end
