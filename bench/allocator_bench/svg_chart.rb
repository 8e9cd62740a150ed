# frozen_string_literal: true

require "erb"

module AllocatorBench
  # What both charts need: a round upper bound for an axis, escaped text, the opening tag.
  module Svg
    def self.ceiling(value)
      return 1 unless value.positive?

      step = 10**Math.log10(value).floor
      (value / step).ceil * step
    end

    def self.esc(text)
      ERB::Util.html_escape(text)
    end

    def self.open_tag(width, height)
      %(<svg xmlns="http://www.w3.org/2000/svg" width="#{width}" height="#{height}" font-family="sans-serif" ) \
        "font-size=\"12\">"
    end
  end

  # RSS over time, one line per configuration (one per run when REPEAT > 1), as SVG.
  class SvgChart
    WIDTH = 900
    HEIGHT = 480
    MARGIN = { left: 70, right: 160, top: 40, bottom: 50 }.freeze
    X_LABEL = "seconds since the server started"
    COLOURS = %w[#c0392b #2980b9 #27ae60 #8e44ad #e67e22 #34495e #95a5a6].freeze

    def initialize(runs, title:)
      @series = runs.select { |run| run.measured? && run.samples&.any? }
      @title = title
    end

    def to_s
      max_t = [@series.flat_map { |run| run.samples.map { |s| s[:t] } }.max || 1, 1].max
      max_mb = [(@series.flat_map { |run| run.samples.map { |s| s[:rss] } }.max || 1) / 1e6, 1].max
      max_mb = Svg.ceiling(max_mb)
      colour = colours
      parts = [header, axes(max_t, max_mb)]
      @series.each do |run|
        points = run.samples.map { |s| "#{x(s[:t], max_t).round(1)},#{y(s[:rss] / 1e6, max_mb).round(1)}" }.join(" ")
        parts << %(<polyline fill="none" stroke="#{colour[run.config]}" stroke-width="1.5" points="#{points}"/>)
      end
      colour.each_with_index do |(name, hex), i|
        ly = MARGIN[:top] + 20 * i
        lx = WIDTH - MARGIN[:right]
        parts << %(<line x1="#{lx + 15}" y1="#{ly}" x2="#{lx + 35}" y2="#{ly}" stroke="#{hex}" stroke-width="3"/>)
        parts << %(<text x="#{WIDTH - MARGIN[:right] + 40}" y="#{ly + 4}">#{Svg.esc(name)}</text>)
      end
      parts << "</svg>\n"
      parts.join("\n")
    end

    private

    def colours
      @series.map(&:config).uniq.each_with_index.to_h { |name, i| [name, COLOURS[i % COLOURS.size]] }
    end

    def header
      %(#{Svg.open_tag(WIDTH, HEIGHT)}
<rect width="100%" height="100%" fill="white"/>
<text x="#{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">#{Svg.esc(@title)}</text>)
    end

    def axes(max_t, max_mb)
      left = MARGIN[:left]
      bottom = HEIGHT - MARGIN[:bottom]
      right = WIDTH - MARGIN[:right]
      middle = (MARGIN[:top] + bottom) / 2
      out = [%(<line x1="#{left}" y1="#{bottom}" x2="#{right}" y2="#{bottom}" stroke="black"/>),
             %(<line x1="#{left}" y1="#{MARGIN[:top]}" x2="#{left}" y2="#{bottom}" stroke="black"/>),
             %(<text x="#{(left + right) / 2}" y="#{HEIGHT - 12}" text-anchor="middle">#{X_LABEL}</text>),
             %(<text x="16" y="#{middle}" text-anchor="middle" transform="rotate(-90 16 #{middle})">RSS (MB)</text>)]
      5.times.map { |i| max_mb * (i + 1) / 5.0 }.each do |mb|
        out << %(<line x1="#{left}" y1="#{y(mb, max_mb)}" x2="#{right}" y2="#{y(mb, max_mb)}" stroke="#ddd"/>)
        out << %(<text x="#{left - 6}" y="#{y(mb, max_mb) + 4}" text-anchor="end">#{mb.round}</text>)
      end
      5.times.map { |i| max_t * (i + 1) / 5.0 }.each do |t|
        out << %(<text x="#{x(t, max_t)}" y="#{bottom + 16}" text-anchor="middle">#{t.round}</text>)
      end
      out.join("\n")
    end

    def x(seconds, max_t)
      MARGIN[:left] + (seconds / max_t * (WIDTH - MARGIN[:left] - MARGIN[:right]))
    end

    def y(megabytes, max_mb)
      HEIGHT - MARGIN[:bottom] - (megabytes / max_mb * (HEIGHT - MARGIN[:top] - MARGIN[:bottom]))
    end
  end
end
