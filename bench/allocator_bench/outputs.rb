# frozen_string_literal: true

require_relative "report"
require_relative "timeline_chart"
require_relative "tradeoff_chart"
require_relative "html_report"

module AllocatorBench
  # The files of one run beside each other: BASE.json (every sample, figure and
  # sentence), BASE.svg (RSS over time), BASE-tradeoff.svg (RSS after idle against speed)
  # and BASE.html (all of it on one page). Written after a run, or drawn again from a JSON.
  module Outputs
    module_function

    # Returns the paths written, by kind.
    def write(report, base:)
      report.write_json("#{base}.json")
      { json: "#{base}.json", **draw(report, base: base) }
    end

    # The charts and the page again from a JSON (a published one under docs/), beside it;
    # the JSON itself is left as it is.
    def redraw(json_path)
      report = Report.from_h(JSON.parse(File.read(json_path), symbolize_names: true))
      { json: json_path, **draw(report, base: json_path.delete_suffix(".json")) }
    end

    def draw(report, base:)
      subject = subject(report.settings)
      timeline = TimelineChart.new(report.runs, title: "#{report.memory} of #{subject}", memory: report.memory).to_s
      tradeoff = TradeoffChart.new(report.rows, title: "Memory against speed: #{subject}", rate: report.rate,
                                                memory: report.memory).to_s
      html = HtmlReport.new(report, timeline: timeline, tradeoff: tradeoff, json_name: File.basename("#{base}.json"))
      files = { timeline: "#{base}.svg", tradeoff: "#{base}-tradeoff.svg", html: "#{base}.html" }
      { timeline: timeline, tradeoff: tradeoff, html: html.to_s }.each { |kind, text| File.write(files[kind], text) }
      files
    end

    # What was measured, where and when: "one Puma process, 25 threads (2026-11-30, 2 cores, ruby 3.1.2p20)",
    # or "Puma in cluster mode: a master and 2 workers of 12 threads (…)".
    def subject(settings)
      server = settings[:workload].to_s.include?("Sidekiq") ? "Sidekiq" : "Puma"
      process = settings[:workload].to_s[/\A.*?\d+ threads/] ||
                "one #{server} process, #{settings[:threads]} threads"
      "#{process} (#{settings[:date].to_s[0, 10]}, #{settings[:host]})"
    end
  end
end
