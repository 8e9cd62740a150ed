# frozen_string_literal: true

require "erb"
require "json"
require_relative "line_chart"
require_relative "checks"
require_relative "prometheus"

module Soak
  # The soak's report in `out`: soak.json (every figure gathered, and the checks), and
  # soak.html (the checks, the restarts, and charts of each process's RSS, the probe's
  # footprint, descriptors and the scrapes' latency over the run).
  class Report
    MIB = 1 << 20

    def initialize(run, checks, out:)
      @run = run
      @checks = checks
      @out = out
    end

    # The report of a run from its soak.json, written again (charts, HTML) in its directory.
    def self.redraw(dir)
      run = JSON.parse(File.read(File.join(dir, "soak.json")), symbolize_names: true)
      # Labels and outcomes are names, not keys of ours: JSON gives them back as text.
      %i[up scrape_durations diagnosis_times].each do |key|
        run[key].each { |series| series[:metric] = series[:metric].transform_keys(&:to_s) }
      end
      run[:outcomes] = run[:outcomes].transform_values { |counts| counts.transform_keys(&:to_s) }
      checks = run.delete(:checks).map { |check| Checks::Check.new(**check) }
      new(run, checks, out: dir).write
    end

    # soak.json, soak.html, and each chart as soak-NAME.svg (for docs/soak.md).
    def write
      File.write(File.join(@out, "soak.json"), JSON.generate(@run.merge(checks: @checks.map(&:to_h))))
      svgs = charts.transform_values(&:to_s)
      File.write(File.join(@out, "soak.html"), html(svgs))
      svgs.each { |name, svg| File.write(File.join(@out, "soak-#{name}.svg"), svg) }
    end

    def charts
      samples = @run[:samples]
      rss = samples.group_by { |s| "#{s[:role]} #{s[:pid]}" }.transform_values { |ss| ss.map { |s| [s[:t], s[:rss]] } }
      probe = @run[:footprints].group_by { |f| "worker #{f[:pid]}" }
                               .transform_values { |fs| fs.map { |f| [f[:t], f[:objects].values.sum] } }
      fds = samples.group_by { |s| "#{s[:role]} #{s[:pid]}" }.reject { |label, _| label.start_with?("worker") }
                   .transform_values { |ss| ss.map { |s| [s[:t], s[:fds]] } }
      scrape = @run[:scrape_durations].to_h do |series|
        [series[:metric]["job"], series[:values].map { |time, value| [time - @run[:started_at], value * 1000] }]
      end
      budget = [@run[:budget], "the guard's budget"]
      { rss: LineChart.new(rss, title: "RSS of each process (the kernel's)", y_label: "MiB", scale: MIB, rule: budget),
        footprint: LineChart.new(probe, title: "The probe's Ruby objects in each worker", y_label: "objects"),
        fds: LineChart.new(fds, title: "Open file descriptors, master and Sidekiq", y_label: "descriptors"),
        scrapes: LineChart.new(scrape, title: "Scrape duration (Prometheus)", y_label: "ms") }
    end

    private

    def html(svgs)
      ERB.new(TEMPLATE, trim_mode: "-").result(binding)
    end

    TEMPLATE = <<~HTML
      <!DOCTYPE html>
      <html lang="en"><head><meta charset="utf-8"><title>bloat_probe soak, <%= @run[:date] %></title>
      <style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}td,th{padding:2px 8px;text-align:left;vertical-align:top}
      .ok{color:#2a7d2a}.fail{color:#c62828;font-weight:bold}code{font-size:12px}</style></head><body>
      <h1>bloat_probe soak: <%= @checks.all?(&:ok) ? "passed" : "FAILED" %></h1>
      <p><%= @run[:date] %>, <%= @run[:duration] %> s; rails-app, Puma cluster of <%= @run[:workers] %> workers × <%= @run[:threads] %> threads,
      guard budget <%= @run[:budget] / MIB %> MiB; Sidekiq; Prometheus scraping every <%= Prometheus::SCRAPE_INTERVAL %> s.
      Page views answered: <%= @run[:page_view_seconds][:count] %>, in <%= @run[:page_view_seconds][:p50] %> s at the median,
      <%= @run[:page_view_seconds][:p99] %> s at the 99th percentile.</p>
      <table><tr><th>check</th><th></th><th>figures</th></tr>
      <%- @checks.each do |check| -%>
      <tr><td><%= ERB::Util.h(check.name) %></td><td class="<%= check.ok ? "ok" : "fail" %>"><%= check.ok ? "ok" : "FAILED" %></td>
      <td><code><%= ERB::Util.h(JSON.generate(check.detail)) %></code></td></tr>
      <%- end -%>
      </table>
      <%- svgs.each_value do |svg| -%>
      <p><%= svg %></p>
      <%- end -%>
      <h2>Workers the guard retired</h2>
      <table><tr><th>pid</th><th>reason</th><th>verdict</th><th>RSS then (MiB)</th></tr>
      <%- @run[:restarts].each do |restart| -%>
      <tr><td><%= restart[:pid] %></td><td><%= restart[:reason] %></td><td><%= restart[:verdict] %></td><td><%= restart[:before_mib] %></td></tr>
      <%- end -%>
      </table></body></html>
    HTML
  end
end
