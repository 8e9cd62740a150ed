# frozen_string_literal: true

module BloatHelper
  CHART_WIDTH = 640
  CHART_HEIGHT = 200
  SERIES = { rss: "RSS", malloc_in_use: "in use", free: "free" }.freeze

  # RSS, in use and free over the Recorder's history, as an inline SVG: no asset from
  # outside the app. One polyline per figure; time runs left to right.
  def memory_chart(history)
    return tag.p("No samples yet.", id: "memory-chart-empty") if history.size < 2

    first = history.first.time
    last = history.last.time
    span = [last - first, 1e-9].max
    top = [history.map { |s| SERIES.keys.map { |key| s[key] || 0 }.max }.max, 1].max
    lines = SERIES.map do |key, label|
      points = history.filter_map do |sample|
        next if sample[key].nil?

        x = (sample.time - first) / span * CHART_WIDTH
        y = CHART_HEIGHT - sample[key].fdiv(top) * CHART_HEIGHT
        format("%.1f,%.1f", x, y)
      end
      tag.polyline(points: points.join(" "), class: "series #{key.to_s.dasherize}", "data-label": label)
    end
    label = "RSS, in use and free over the last #{span.round} s, up to #{BloatProbe::Format.bytes(top)}"
    tag.svg(safe_join(lines), id: "memory-chart", viewBox: "0 0 #{CHART_WIDTH} #{CHART_HEIGHT}",
                              width: CHART_WIDTH, height: CHART_HEIGHT, role: "img", "aria-label": label)
  end
end
