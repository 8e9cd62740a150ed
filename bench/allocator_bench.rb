# frozen_string_literal: true

# rake bench: the same app under the same load, once per allocator configuration, side
# by side in one run. Settings come from the environment (see docs/bench.md). This file
# is the command line: the settings, the runs, then the table, the findings and the files.

$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "etc"
require "time"
require_relative "allocator_bench/settings"
require_relative "allocator_bench/runner"
require_relative "allocator_bench/outputs"

module AllocatorBench
  def self.main
    settings = Settings.from_env
    host = "#{Etc.nprocessors} cores, #{RUBY_DESCRIPTION.split(" (").first}"
    runner = Runner.new(settings)
    workload = runner.workload
    warn "rake bench: #{"preset #{settings.preset}: " if settings.preset}#{settings.configs.map(&:name).join(", ")}; " \
         "#{workload.describe}; idle tail #{settings.idle} s, repeat #{settings.repeat}"
    runs = runner.run
    machine = { cores: Etc.nprocessors, ruby: RUBY_DESCRIPTION, glibc: BloatProbe.allocator.version }
    report = Report.new(runs, settings.to_h.merge(host: host, date: Time.now.utc.iso8601, workload: workload.describe,
                                                  machine: machine),
                        rate: workload.rate)
    base = File.join(settings.results_dir, "bench-#{"#{workload.name}-" unless workload.name == "web"}#{runner.stamp}")
    files = Outputs.write(report, base: base)
    puts "", "Memory in MB (1 MB = 10^6 bytes); latency in ms; medians, with min–max when REPEAT > 1.", report.table
    puts "", *report.findings
    if report.raisers.any?
      puts "", "Which endpoints or jobs raised the arenas' high-water marks (all rounds):", *report.raisers
    end
    width = settings.configs.map { |config| config.name.size }.max
    puts "", "Workload: #{workload.describe}.",
         *settings.configs.map { |config| format("%-#{width}s  %s", config.name, config.summary) }
    terminal_plot(runs) if settings.plot
    puts "", "Report: #{files[:html]} (the table, the findings and both charts on one page)",
         "JSON:   #{files[:json]}", "SVG:    #{files[:timeline]}",
         "        #{files[:tradeoff]} (#{report.memory} after idle against speed)",
         format("Wall time: %dm%02ds", *runner.elapsed.divmod(60))
  rescue ArgumentError => e
    abort "rake bench: #{e.message}"
  rescue Interrupt
    ChildProcess.stop_all
    abort "\nrake bench: interrupted; every process it started is stopped"
  end

  def self.terminal_plot(runs)
    require "unicode_plot"
    series = runs.select { |run| run.measured? && run.samples&.any? && run.round == 1 }
    return if series.empty?

    first, *rest = series
    plot = UnicodePlot.lineplot(first.samples.map { |s| s[:t] }, first.samples.map { |s| s[:rss] / 1e6 },
                                name: first.config, title: "RSS (MB) over seconds", width: 60, height: 15)
    rest.each do |run|
      UnicodePlot.lineplot!(plot, run.samples.map { |s| s[:t] }, run.samples.map do |s|
                                                                   s[:rss] / 1e6
                                                                 end, name: run.config)
    end
    puts
    plot.render($stdout)
  rescue LoadError
    warn "rake bench: no terminal plot: unicode_plot is missing (bin/setup installs ruby-unicode-plot)"
  end
end

AllocatorBench.main if $PROGRAM_NAME == __FILE__
