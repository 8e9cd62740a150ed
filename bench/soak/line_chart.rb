# frozen_string_literal: true

require_relative "../allocator_bench/svg"

module Soak
  # Lines over the soak's time as SVG: one per series (a process, a figure), its label at
  # its end, axes ticked at round values.
  class LineChart
    WIDTH = 960
    HEIGHT = 360
    MARGIN = { left: 70, right: 150, top: 40, bottom: 45 }.freeze
    X_LABEL = "seconds since the load started"
    COLOURS = %w[#1f77b4 #d62728 #2ca02c #9467bd #ff7f0e #8c564b #e377c2 #7f7f7f #bcbd22 #17becf].freeze
    Svg = AllocatorBench::Svg

    # series: { label => [[seconds, value]] }; unit: what a value is divided by to show it
    # on the y axis, and that axis's label.
    # rule: [value, label] drawn as a dashed line across (a budget).
    def initialize(series, title:, y_label:, scale: 1.0, rule: nil)
      @series = series.reject { |_, points| points.empty? }
      @rule = rule
      @title = title
      @y_label = y_label
      @scale = scale
      points = @series.values.flatten(1)
      @x_ticks = Svg.ticks(points.map(&:first).max || 1)
      @y_ticks = Svg.ticks([*points.map(&:last), rule&.first].compact.max.to_f / scale)
      @max_x = @x_ticks.last.to_f
      @max_y = @y_ticks.last.to_f
    end

    def to_s
      lines = @series.each_with_index.map { |(label, points), i| line(label, points, COLOURS[i % COLOURS.size]) }
      [Svg.open_tag(WIDTH, HEIGHT), %(<rect width="100%" height="100%" fill="white"/>),
       %(<text x="#{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">#{Svg.esc(@title)}</text>),
       axes, *lines, *rule_line, "</svg>\n"].join("\n")
    end

    private

    def x(value) = MARGIN[:left] + (value / @max_x * (WIDTH - MARGIN[:left] - MARGIN[:right]))
    def y(value) = HEIGHT - MARGIN[:bottom] - (value / @scale / @max_y * (HEIGHT - MARGIN[:top] - MARGIN[:bottom]))

    def rule_line
      return [] unless @rule

      value, label = @rule
      at = y(value).round(1)
      dash = %(stroke="black" stroke-dasharray="6 4")
      [%(<line x1="#{MARGIN[:left]}" x2="#{WIDTH - MARGIN[:right]}" y1="#{at}" y2="#{at}" #{dash}/>),
       %(<text x="#{MARGIN[:left] + 6}" y="#{at - 5}" font-size="11">#{Svg.esc(label)}</text>)]
    end

    def line(label, points, colour)
      path = points.map { |t, v| "#{x(t).round(1)},#{y(v).round(1)}" }.join(" ")
      last_t, last_v = points.last
      name = Svg.esc(label)
      [%(<polyline fill="none" stroke="#{colour}" stroke-width="1.5" points="#{path}">) +
        "<title>#{name}</title></polyline>",
       %(<text x="#{(x(last_t) + 4).round(1)}" y="#{(y(last_v) + 4).round(1)}" font-size="11" fill="#{colour}">) +
         "#{name}</text>"].join("\n")
    end

    def axes
      left = MARGIN[:left]
      bottom = HEIGHT - MARGIN[:bottom]
      ticks = @x_ticks.map do |tx|
        %(<text x="#{x(tx).round(1)}" y="#{bottom + 16}" text-anchor="middle" font-size="11">#{format("%g", tx)}</text>)
      end
      ticks += @y_ticks.flat_map do |ty|
        at = y(ty * @scale).round(1)
        [%(<text x="#{left - 6}" y="#{at + 4}" text-anchor="end" font-size="11">#{format("%g", ty)}</text>),
         %(<line x1="#{left}" x2="#{WIDTH - MARGIN[:right]}" y1="#{at}" y2="#{at}" stroke="#eee"/>)]
      end
      [%(<line x1="#{left}" y1="#{bottom}" x2="#{WIDTH - MARGIN[:right]}" y2="#{bottom}" stroke="black"/>),
       %(<line x1="#{left}" y1="#{MARGIN[:top]}" x2="#{left}" y2="#{bottom}" stroke="black"/>), *ticks,
       %(<text x="#{(left + WIDTH - MARGIN[:right]) / 2}" y="#{HEIGHT - 8}" text-anchor="middle" font-size="12">) +
         "#{X_LABEL}</text>",
       %(<text transform="translate(16,#{HEIGHT / 2}) rotate(-90)" text-anchor="middle" font-size="12">) +
         "#{Svg.esc(@y_label)}</text>"].join("\n")
    end
  end
end
