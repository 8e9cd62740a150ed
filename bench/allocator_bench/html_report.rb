# frozen_string_literal: true

require "erb"
require_relative "configuration"
require_relative "svg"

module AllocatorBench
  # One page per run, self-contained (no file, font or script from elsewhere), to open
  # or share: the settings and the machine, the table with its ratios to glibc, the
  # findings, both charts inline, and the command that runs it again.
  class HtmlReport
    # The settings that make a run, as the environment names them, and its task, by rate.
    RERUN = {
      "req/s" => [{ configs: "CONFIGS", requests: "REQUESTS", concurrency: "CONCURRENCY", mix: "MIX", idle: "IDLE",
                    repeat: "REPEAT", threads: "THREADS" }, "bench"],
      "jobs/s" => [{ configs: "CONFIGS", jobs: "JOBS", idle: "IDLE", repeat: "REPEAT", threads: "THREADS" },
                   "bench:sidekiq"]
    }.freeze
    STYLE = <<~CSS
      body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
      table { border-collapse: collapse; margin: .5rem 0 1.5rem; font-size: .9rem; }
      th, td { padding: .25rem .6rem; text-align: right; border-bottom: 1px solid #eee; white-space: nowrap; }
      th { white-space: normal; vertical-align: bottom; }
      td small { display: block; color: #777; font-size: .75rem; }
      #results td:last-child, #results th:last-child { text-align: left; white-space: normal; min-width: 9rem; }
      .scroll { overflow-x: auto; }
      th:first-child, td:first-child { text-align: left; }
      td.skipped { text-align: left; color: #666; }
      .swatch { display: inline-block; width: 1.6rem; height: 0; vertical-align: middle; margin-right: .4rem;
                border-top-width: 3px; border-top-color: currentColor; }
      dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
      dt { font-weight: 600; }
      code { background: #f4f4f4; padding: .1rem .3rem; }
      figure { margin: 1rem 0; }
      figure svg { max-width: 100%; height: auto; }
    CSS

    # report: a Report; charts: the two SVG texts; json_name: the JSON's file name beside it.
    def initialize(report, timeline:, tradeoff:, json_name:)
      @report = report
      @settings = report.settings
      @timeline = timeline
      @tradeoff = tradeoff
      @json_name = json_name
    end

    def to_s
      <<~HTML
        <!DOCTYPE html>
        <html lang="en">
        <head><meta charset="utf-8"><title>#{esc(title)}</title><style>#{STYLE}</style></head>
        <body>
        <h1>#{esc(title)}</h1>
        <p>#{esc(@settings[:workload])}.</p>
        <h2>Findings</h2>
        <ul id="findings">#{@report.findings.map { |finding| "<li>#{esc(finding)}</li>" }.join}</ul>
        <h2>The table</h2>
        <p>Memory in MB (10<sup>6</sup> bytes), latency in ms; medians, with the lowest and highest round when
        there were several. The verdict is <code>BloatProbe.diagnose</code>'s in the server after the idle tail.</p>
        #{table(*@report.table_cells, id: "results")}
        #{raisers}
        #{ratios}
        #{cluster}
        <h2>#{@report.memory} over time</h2>
        <figure id="timeline">#{@timeline}</figure>
        <h2>Memory against speed</h2>
        <figure id="tradeoff">#{@tradeoff}</figure>
        <h2>What each configuration sets</h2>
        #{legend}
        <h2>The machine and the settings</h2>
        #{machine}
        <h2>Run it again</h2>
        <p><code id="rerun">#{esc(rerun)}</code></p>
        <p>Every sample, figure and sentence: <a href="#{esc(@json_name)}">#{esc(@json_name)}</a>.</p>
        </body>
        </html>
      HTML
    end

    private

    def title
      "rake bench, #{@settings[:date].to_s[0, 10]}: #{@report.rows.size} configurations"
    end

    def esc(text)
      ERB::Util.html_escape(text.to_s)
    end

    def table(headers, body, id:)
      head = headers.map { |header| "<th>#{esc(header)}</th>" }.join
      rows = body.map do |cells|
        name, *rest = cells
        first = %(<td>#{swatch(name)}#{esc(name)}</td>)
        if cells.size == 2
          next %(<tr data-config="#{esc(name)}">#{first}<td class="skipped" colspan="#{headers.size - 1}">) +
            "#{esc(rest.first)}</td></tr>"
        end

        %(<tr data-config="#{esc(name)}">#{first}#{rest.map { |cell| "<td>#{figure(cell)}</td>" }.join}</tr>)
      end
      %(<div class="scroll"><table id="#{id}"><thead><tr>#{head}</tr></thead>) +
        %(<tbody>#{rows.join("\n")}</tbody></table></div>)
    end

    # "1946 (1883–2080)": the median, with the rounds' range in small print below it.
    def figure(cell)
      median, range = cell.to_s.match(/\A(.*?) \((\S+–\S+)\)\z/)&.captures
      median ? "#{esc(median)}<small>#{esc(range)}</small>" : esc(cell)
    end

    def raisers
      lines = @report.raisers
      return "" if lines.empty?

      "<h3>Which endpoints or jobs raised the arenas' high-water marks</h3>\n" \
        "<ul id=\"raisers\">#{lines.map { |line| "<li>#{esc(line)}</li>" }.join}</ul>"
    end

    def cluster
      cells = @report.cluster_cells or return ""

      "<h3>The workers: shared fraction of their RSS, and private memory</h3>\n#{table(*cells, id: "cluster")}"
    end

    def ratios
      cells = @report.ratio_cells
      return "<p>No glibc row, so no ratios.</p>" unless cells

      "<h3>As a ratio to glibc</h3>\n#{table(*cells, id: "ratios")}"
    end

    # The configuration's colour and dash, as the charts draw it.
    def swatch(name)
      look = Configuration.look(name)
      style = if look.dash.empty? then "solid"
              elsif look.dash.split.first.to_i > 3 then "dashed"
              else
                "dotted"
              end
      %(<span class="swatch" style="color: #{look.colour}; border-top-style: #{style}"></span>)
    end

    def legend
      known = Configuration.all.to_h { |config| [config.name, config.summary] }
      items = @report.rows.map do |row|
        summary = known.fetch(row.config, "(not one of the bench's)")
        "<dt>#{swatch(row.config)}#{esc(row.config)}</dt><dd>#{esc(summary)}</dd>"
      end
      "<dl>#{items.join}</dl>"
    end

    def machine
      versions = @report.runs.select(&:measured?).to_h { |run| [run.config, run.allocator_version] }
      allocators = if versions.values.none?
                     "not recorded in this run's JSON (before 2026-11-30)"
                   else
                     versions.map { |name, version| "#{name}: #{version || "-"}" }.join("; ")
                   end
      facts = { "Host" => @settings[:host], "glibc (the bench's)" => @settings.dig(:machine, :glibc) || "not recorded",
                "Allocators" => allocators, "Date" => @settings[:date], "Requests or jobs" => load_size,
                "Idle tail" => "#{@settings[:idle]} s", "Rounds" => @settings[:repeat] }
      "<dl>#{facts.map { |name, value| "<dt>#{esc(name)}</dt><dd>#{esc(value)}</dd>" }.join}</dl>"
    end

    def load_size
      @report.rate == "jobs/s" ? "#{@settings[:jobs]} jobs" : "#{@settings[:requests]} requests, mix #{@settings[:mix]}"
    end

    def rerun
      variables, task = RERUN.fetch(@report.rate)
      env = variables.filter_map do |key, variable|
        value = @settings[key]
        value = value.join(",") if value.is_a?(Array)
        "#{variable}=#{value}" unless value.nil? || value.to_s.empty?
      end
      [*env, "bin/rake", task].join(" ")
    end
  end
end
