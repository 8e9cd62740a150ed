# frozen_string_literal: true

require_relative "configuration"
require_relative "svg"

module AllocatorBench
  # RSS over time as SVG: one line per configuration, its median round (by RSS after the
  # idle tail) drawn bold with its marker at the end, the other rounds thin and faint in
  # the same look; a legend in the table's order; axes ticked at round values, with units.
  class TimelineChart
    WIDTH = 960
    HEIGHT = 520
    MARGIN = { left: 70, right: 210, top: 50, bottom: 55 }.freeze
    X_LABEL = "seconds since the server started"
    LEGEND_ROW = 22

    # runs: run records, in the table's order of configurations.
    # memory: what the samples are (Report#memory).
    def initialize(runs, title:, memory: "RSS")
      @by_config = runs.select { |run| run.measured? && run.samples&.any? }.group_by(&:config)
      @title = title
      @memory = memory
      @max_t = Svg.ticks(@by_config.values.flatten.flat_map { |run| run.samples.map { |s| s[:t] } }.max || 1)
      @max_mb = Svg.ticks((@by_config.values.flatten.flat_map { |run| run.samples.map { |s| s[:rss] } }.max || 1) / 1e6)
    end

    def to_s
      faint = @by_config.flat_map { |name, runs| (runs - [median(runs)]).map { |run| line(name, run, median: false) } }
      bold = @by_config.map { |name, runs| line(name, median(runs), median: true) }
      [Svg.open_tag(WIDTH, HEIGHT), %(<rect width="100%" height="100%" fill="white"/>),
       %(<text x="#{WIDTH / 2}" y="24" text-anchor="middle" font-size="15">#{Svg.esc(@title)}</text>),
       axes, *faint, *bold, legend, "</svg>\n"].join("\n")
    end

    private

    # The round whose RSS after the idle tail is the median (the lower of the two middle
    # ones for an even count).
    def median(runs)
      runs.sort_by { |run| run.rss_after_idle || Float::INFINITY }[(runs.size - 1) / 2]
    end

    def line(name, run, median:)
      look = Configuration.look(name)
      points = run.samples.map { |s| [x(s[:t]), y(s[:rss] / 1e6)] }
      path = %(<polyline class="#{median ? "median" : "round"}" data-config="#{Svg.esc(name)}" fill="none" ) +
             %(#{Svg.stroke(look, width: median ? 2.2 : 1)}#{median ? "" : ' stroke-opacity="0.35"'} ) +
             %(points="#{points.map { |px, py| "#{px.round(1)},#{py.round(1)}" }.join(" ")}"/>)
      return path unless median

      "#{path}\n#{Svg.marker(look, *points.last.map { |v| v.round(1) }, title: name)}"
    end

    def axes
      left = MARGIN[:left]
      right = WIDTH - MARGIN[:right]
      top = MARGIN[:top]
      bottom = HEIGHT - MARGIN[:bottom]
      middle = (top + bottom) / 2
      out = @max_mb.map do |mb|
        %(<line x1="#{left}" y1="#{y(mb)}" x2="#{right}" y2="#{y(mb)}" stroke="#e5e5e5"/>\n) +
          %(<text class="tick y" x="#{left - 6}" y="#{y(mb) + 4}" text-anchor="end">#{mb}</text>)
      end
      out += @max_t.map do |seconds|
        %(<text class="tick x" x="#{x(seconds)}" y="#{bottom + 16}" text-anchor="middle">#{seconds}</text>)
      end
      out + [%(<line x1="#{left}" y1="#{bottom}" x2="#{right}" y2="#{bottom}" stroke="black"/>),
             %(<line x1="#{left}" y1="#{top}" x2="#{left}" y2="#{bottom}" stroke="black"/>),
             %(<text x="#{(left + right) / 2}" y="#{HEIGHT - 14}" text-anchor="middle">#{X_LABEL}</text>),
             %(<text x="18" y="#{middle}" text-anchor="middle" transform="rotate(-90 18 #{middle})">) +
             "#{@memory} (MB)</text>"]
    end

    # In the table's order: each configuration's line and marker, its name, and its median
    # RSS after the idle tail; the faint lines are its other rounds.
    def legend
      left = WIDTH - MARGIN[:right] + 16
      rows = @by_config.each_with_index.map do |(name, runs), i|
        look = Configuration.look(name)
        row_y = MARGIN[:top] + 8 + (LEGEND_ROW * i)
        idle = median(runs).rss_after_idle
        figure = idle ? format(" %.0f MB", idle / 1e6) : ""
        %(<g class="legend-entry" data-config="#{Svg.esc(name)}">) +
          %(<line x1="#{left}" y1="#{row_y}" x2="#{left + 34}" y2="#{row_y}" #{Svg.stroke(look, width: 2.2)}/>) +
          Svg.marker(look, left + 17, row_y) +
          %(<text x="#{left + 42}" y="#{row_y + 4}">#{Svg.esc(name)}#{figure}</text></g>)
      end
      note_y = MARGIN[:top] + 8 + (LEGEND_ROW * rows.size) + 6
      note = %(<text x="#{left}" y="#{note_y}" font-size="10" fill="#555">after idle; bold: median round</text>)
      [*rows, note].join("\n")
    end

    def x(seconds)
      (MARGIN[:left] + (seconds / @max_t.last.to_f * (WIDTH - MARGIN[:left] - MARGIN[:right]))).round(1)
    end

    def y(megabytes)
      (HEIGHT - MARGIN[:bottom] - (megabytes / @max_mb.last.to_f * (HEIGHT - MARGIN[:top] - MARGIN[:bottom]))).round(1)
    end
  end
end
