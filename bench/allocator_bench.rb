# frozen_string_literal: true

# rake bench: the same app under the same load, once per allocator configuration, side
# by side in one run. Settings come from the environment (see README, "rake bench").

require "fileutils"
require "time"
require_relative "allocator_bench/configuration"
require_relative "allocator_bench/workloads"
require_relative "allocator_bench/report"
require_relative "allocator_bench/svg_chart"
require_relative "allocator_bench/tradeoff_chart"

module AllocatorBench
  Settings = Struct.new(:workload, :preset, :configs, :requests, :jobs, :concurrency, :mix, :idle, :repeat, :threads,
                        :sample_interval, :results_dir, :plot, keyword_init: true) do
    # Settings a preset gives unless the environment sets them. seed: Bloaty McBloatface's
    # own load, `ab -k -c 25 -n 1000 /posts`, for the three configurations it compared:
    # plain page views, no workload routes.
    PRESETS = {
      "seed" => { "CONFIGS" => "glibc,arena2,jemalloc", "REQUESTS" => "1000", "CONCURRENCY" => "25", "MIX" => "index:1" }
    }.freeze

    def self.from_env(env = ENV)
      workload = env["WORKLOAD"].to_s.strip
      workload = "web" if workload.empty?
      unless Workloads::ALL.key?(workload)
        raise ArgumentError, "WORKLOAD must be one of #{Workloads::ALL.keys.join(", ")} (or unset), got #{env["WORKLOAD"].inspect}"
      end

      preset = env["PRESET"].to_s.strip
      raise ArgumentError, "PRESET=#{preset} is a web load; it does not go with WORKLOAD=#{workload}" if !preset.empty? && workload != "web"

      unless preset.empty?
        defaults = PRESETS.fetch(preset) do
          raise ArgumentError, "PRESET must be one of #{PRESETS.keys.join(", ")} (or unset), got #{env["PRESET"].inspect}"
        end
        env = defaults.merge(env.to_h.reject { |_name, value| value.to_s.strip.empty? })
      end
      new(
        workload: workload,
        preset: preset.empty? ? nil : preset,
        configs: Configuration.select(env["CONFIGS"]),
        requests: positive(env, "REQUESTS", 2500),
        jobs: positive(env, "JOBS", 8000),
        concurrency: positive(env, "CONCURRENCY", 25),
        # Most requests are ordinary; one in 40 is heavy. Each Puma thread that serves a
        # heavy one leaves its arena at that high-water mark (see README).
        mix: Mix.new(env["MIX"].to_s.strip.empty? ? "posts:10,strings:29,churn:1" : env["MIX"]),
        idle: positive(env, "IDLE", 15),
        repeat: positive(env, "REPEAT", 1),
        threads: positive(env, "THREADS", 25),
        sample_interval: 0.2,
        results_dir: File.expand_path(env.fetch("RESULTS_DIR", "bench/results"), Dir.pwd),
        plot: plot(env)
      )
    end

    # PLOT=1 draws the terminal plot even into a pipe, PLOT=0 never; unset, on a terminal.
    def self.plot(env)
      case env["PLOT"]
      when nil, "" then $stdout.tty?
      when "1" then true
      when "0" then false
      else raise ArgumentError, "PLOT must be 0 or 1, got #{env["PLOT"].inspect}"
      end
    end

    def self.positive(env, name, default)
      raw = env[name]
      return default if raw.nil? || raw.empty?

      value = Integer(raw, exception: false)
      raise ArgumentError, "#{name} must be a whole number >= 1, got #{raw.inspect}" unless value&.positive?

      value
    end

    def to_h
      super.merge(configs: configs.map(&:name), mix: mix.to_s)
    end
  end

  # Progress on stderr, from ruby-progressbar: on a terminal, a bar redrawn in place with
  # the elapsed time and an estimate of what is left; otherwise one plain line per phase.
  # Each run of a configuration counts the same: booting is its first tenth, the load up to
  # eight tenths (by requests answered), the idle tail the rest (by time), so the estimate
  # is the pace of the runs done so far applied to those left.
  class Progress
    UNITS_PER_RUN = 100
    PHASES = { boot: 0...10, load: 10...80, idle: 80...100 }.freeze
    BAR_FORMAT = "%t |%B| %a,%E"
    LINE_FORMAT = "%t (%p%%, %a,%E)"
    DONE_FORMAT = "%t |%B| %a"

    def initialize(runs, io: $stderr)
      require "ruby-progressbar"
      require "ruby-progressbar/outputs/null"
      @io = io
      @tty = io.tty?
      @run = 0
      # Finished by #finish only: at the total, the estimate would turn into a second
      # elapsed time.
      @bar = ProgressBar.create(title: "starting", total: runs * UNITS_PER_RUN, format: BAR_FORMAT, smoothing: 0.0,
                                autofinish: false, output: @tty ? io : ProgressBar::Outputs::Null)
    end

    # phase: :boot, :load or :idle; done: the share of that phase done, 0.0..1.0.
    def update(label, phase, done = 0.0)
      span = PHASES.fetch(phase)
      advance_to(@run * UNITS_PER_RUN + span.begin + ((span.end - span.begin) * done.clamp(0.0, 1.0)).floor)
      # A new title redraws at once; a progress update alone may be throttled. Set last,
      # the frame shows both.
      @bar.title = label
      @io.puts(@bar.to_s(LINE_FORMAT)) if !@tty && phase != @phase
      @phase = phase
    end

    def finish_run
      @run += 1
      @phase = nil
      advance_to(@run * UNITS_PER_RUN)
    end

    def finish
      @bar.format = DONE_FORMAT
      @bar.title = "done"
      @bar.finish
      @io.puts(@bar.to_s(DONE_FORMAT)) unless @tty
    end

    private

    # Short of the total until #finish: at the total, the bar would call itself done.
    def advance_to(units)
      @bar.progress = [units, @bar.total - 1].min
    end
  end

  class Runner
    attr_reader :workload

    def initialize(settings)
      @settings = settings
      @workload = Workloads.for(settings.workload, settings)
      @progress = Progress.new(settings.configs.size * settings.repeat)
      @started = Time.now
    end

    def run
      FileUtils.mkdir_p(@settings.results_dir)
      runs = []
      # Interleaved rounds (glibc, arena2, …, glibc, arena2, …), so that drift in the
      # machine's load touches every configuration alike.
      @settings.repeat.times do |round|
        @settings.configs.each { |config| runs << run_one(config, round + 1) }
      end
      @progress.finish
      runs
    ensure
      ChildProcess.stop_all
    end

    def stamp
      @started.utc.strftime("%Y%m%d-%H%M%S")
    end

    def elapsed
      (Time.now - @started).round
    end

    private

    def label(config, round, text, phase, done = 0.0)
      @progress.update("#{config.name}#{@settings.repeat > 1 ? " (round #{round})" : ""}: #{text}", phase, done)
    end

    def run_one(config, round)
      run = { config: config.name, round: round }
      if (why = config.missing)
        @progress.finish_run
        return run.merge(skipped: why)
      end

      log_path = File.join(@settings.results_dir, "#{stamp}-#{config.name}-#{round}.log")
      boot_started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      label(config, round, "booting", :boot)
      begin
        server = @workload.start(config, log_path: log_path)
      rescue BootError => e
        @progress.finish_run
        warn "\n#{config.name}: #{e.message}; the tail of #{log_path}:\n#{ChildProcess.log_tail(log_path)}"
        return run.merge(failed: e.message)
      end
      run[:server_pid] = server.pid
      measure(server, config, round, run, boot_started)
    ensure
      server&.stop
    end

    def measure(server, config, round, run, boot_started)
      sampler = Sampler.new(server, interval: @settings.sample_interval, started_at: boot_started).start
      run[:rss_start] = server.rss
      sampler.phase = "load"
      total = @workload.total
      load = @workload.drive(server) do |done|
        label(config, round, "load, #{done}/#{total} #{@workload.unit}", :load, done.fdiv(total))
      end
      run[:rss_end_of_load] = server.rss
      sampler.phase = "idle"
      idle_tail(server, config, round)
      run[:rss_after_idle] = server.rss
      @progress.finish_run
      stats = server.stats
      sampler.stop
      run.merge(load, arena_figures(stats), trimmer: stats["trimmer"], rss_peak: sampler.peak,
                samples: sampler.samples)
    end

    # The load stops, but not all traffic: a trickle of ordinary page views or small jobs
    # (4 a second), as a server sees between busy spells. jemalloc without background
    # threads purges an arena only when some thread allocates there, so a silent process
    # would keep every page it has.
    def idle_tail(server, config, round)
      deadline = monotonic + @settings.idle
      while (left = deadline - monotonic).positive?
        label(config, round, "idle tail, #{left.ceil} s left", :idle, 1 - left / @settings.idle)
        @workload.tick(server)
        sleep 0.25
      end
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    def arena_figures(stats)
      arenas = stats["arena_stats"]
      verdict = stats.dig("diagnosis", "verdict")
      return { allocator: arenas["allocator"], verdict: verdict } unless arenas["allocator"] == "glibc"

      { allocator: "glibc", verdict: verdict, arena_count: arenas["arena_count"], in_use: arenas["in_use"], free: arenas["free"],
        rss_per_in_use: arenas["rss"].to_f / arenas["in_use"],
        arenas: arenas["arenas"].map { |arena| arena.slice("index", "system", "in_use", "free") } }
    end
  end

  def self.main
    settings = Settings.from_env
    host = "#{Etc.nprocessors} cores, #{RUBY_DESCRIPTION.split(" (").first}"
    runner = Runner.new(settings)
    workload = runner.workload
    warn "rake bench: #{"preset #{settings.preset}: " if settings.preset}#{settings.configs.map(&:name).join(", ")}; " \
         "#{workload.describe}; idle tail #{settings.idle} s, repeat #{settings.repeat}"
    runs = runner.run
    report = Report.new(runs, settings.to_h.merge(host: host, date: Time.now.utc.iso8601, workload: workload.describe),
                        rate: workload.rate)
    base = File.join(settings.results_dir, "bench-#{"#{workload.name}-" unless workload.name == "web"}#{runner.stamp}")
    report.write_json("#{base}.json")
    subject = "#{workload.process} (#{Time.now.utc.strftime("%Y-%m-%d")}, #{host})"
    File.write("#{base}.svg", SvgChart.new(runs, title: "RSS of #{subject}").to_s)
    File.write("#{base}-tradeoff.svg",
               TradeoffChart.new(report.rows, title: "Memory against speed: #{subject}", rate: workload.rate).to_s)
    puts "", "Memory in MB (1 MB = 10^6 bytes); latency in ms; medians, with min–max when REPEAT > 1.", report.table
    puts "", *report.findings
    width = settings.configs.map { |config| config.name.size }.max
    puts "", "Workload: #{workload.describe}.",
         *settings.configs.map { |config| format("%-#{width}s  %s", config.name, config.summary) }
    terminal_plot(runs) if settings.plot
    puts "", "JSON: #{base}.json", "SVG:  #{base}.svg", "      #{base}-tradeoff.svg (RSS after idle against speed)", format("Wall time: %dm%02ds", *runner.elapsed.divmod(60))
  rescue ArgumentError => e
    abort "rake bench: #{e.message}"
  rescue Interrupt
    ChildProcess.stop_all
    abort "\nrake bench: interrupted; every process it started is stopped"
  end

  def self.terminal_plot(runs)
    require "unicode_plot"
    series = runs.select { |run| run[:samples]&.any? && run[:round] == 1 }
    return if series.empty?

    first, *rest = series
    plot = UnicodePlot.lineplot(first[:samples].map { |s| s[:t] }, first[:samples].map { |s| s[:rss] / 1e6 },
                                name: first[:config], title: "RSS (MB) over seconds", width: 60, height: 15)
    rest.each { |run| UnicodePlot.lineplot!(plot, run[:samples].map { |s| s[:t] }, run[:samples].map { |s| s[:rss] / 1e6 }, name: run[:config]) }
    puts
    plot.render($stdout)
  rescue LoadError
    warn "rake bench: no terminal plot: unicode_plot is missing (bin/setup installs ruby-unicode-plot)"
  end
end

require "etc"
AllocatorBench.main if $PROGRAM_NAME == __FILE__
