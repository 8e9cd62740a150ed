# frozen_string_literal: true

module BloatHelper
  CHART = { width: 640, height: 220, left: 64, right: 12, top: 10, bottom: 34 }.freeze
  # Each series: its label, and its class (the CSS gives each its colour and dash).
  SERIES = { rss: %w[RSS rss], malloc_in_use: ["in use", "in-use"], free: %w[free free] }.freeze
  # A cluster process's memory: what it shares with the others (the master's pages), and its own.
  SHARING_SERIES = { shared: %w[shared shared], private: %w[private private] }.freeze

  # `series` (SERIES by default) over a Recorder's history, as an inline SVG (no asset from
  # outside the app): sizes in MiB up the left, clock times along the bottom.
  def memory_chart(history, series: SERIES, id: "memory-chart")
    return tag.p("No samples yet: the Reporter adds one each interval.", id: "#{id}-empty") if history.size < 2

    first = history.first.time
    span = [history.last.time - first, 1e-9].max
    top = Ticks.up_to(history.map { |s| series.keys.map { |key| s[key] || 0 }.max }.max / 1_048_576.0)
    x = ->(time) { CHART[:left] + ((time - first) / span * plot_width) }
    y = ->(mib) { CHART[:top] + plot_height - (mib / top.last.to_f * plot_height) }
    lines = series.map do |key, (label, css)|
      points = history.filter_map do |sample|
        format("%.1f,%.1f", x.call(sample.time), y.call(sample[key] / 1_048_576.0)) if sample[key]
      end
      tag.polyline(points: points.join(" "), class: "series #{css}", "data-label": label)
    end
    label = "#{series.values.map(&:first).to_sentence} from #{Time.at(first).strftime("%H:%M:%S")} " \
            "for #{span.round} s, up to #{top.last} MiB"
    tag.svg(safe_join([*chart_axes(top, first, span, y), *lines]), id: id, class: "chart",
                                                                   viewBox: "0 0 #{CHART[:width]} #{CHART[:height]}",
                                                                   width: CHART[:width], height: CHART[:height],
                                                                   role: "img", "aria-label": label)
  end

  # A ratio to the control, or a dash where either side had nothing to compare.
  def ratio(value)
    value ? format("%.2f×", value) : "–"
  end

  private

  def plot_width = CHART[:width] - CHART[:left] - CHART[:right]

  def plot_height = CHART[:height] - CHART[:top] - CHART[:bottom]

  # Gridlines at round MiB, a tick at round seconds labelled with the clock time.
  def chart_axes(top, first, span, y)
    bottom = CHART[:top] + plot_height
    grid = top.flat_map do |mib|
      [tag.line(x1: CHART[:left], y1: y.call(mib), x2: CHART[:width] - CHART[:right], y2: y.call(mib), class: "grid"),
       tag.text(mib, x: CHART[:left] - 6, y: y.call(mib) + 4, "text-anchor": "end", class: "tick y")]
    end
    # Whole seconds only: a clock time shows no fraction.
    times = Ticks.up_to(span, count: 4).select { |seconds| seconds <= span && seconds == seconds.to_i }
    grid += times.map do |seconds|
      tag.text(Time.at(first + seconds).strftime("%H:%M:%S"),
               x: CHART[:left] + (seconds / span * plot_width), y: bottom + 16, "text-anchor": "middle",
               class: "tick x")
    end
    grid + [tag.text("MiB", x: 12, y: CHART[:top] + 12, class: "unit"),
            tag.text("time (this server's clock)", x: CHART[:left] + (plot_width / 2), y: CHART[:height] - 2,
                                                   "text-anchor": "middle", class: "unit"),
            tag.line(x1: CHART[:left], y1: bottom, x2: CHART[:width] - CHART[:right], y2: bottom, class: "axis"),
            tag.line(x1: CHART[:left], y1: CHART[:top], x2: CHART[:left], y2: bottom, class: "axis")]
  end
end
