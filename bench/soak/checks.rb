# frozen_string_literal: true

require "bloat_probe"

module Soak
  # What must hold for the soak to pass, each check from the figures gathered: a name, ok,
  # and the figures it judged, for the report.
  class Checks
    Check = Struct.new(:name, :ok, :detail, keyword_init: true)

    # The probe's own, in each Puma worker, from the tenth minute (a sixth of the run) on.
    FOOTPRINT_BOUNDS = {
      probe_objects: 5_000,
      probe_threads: 3, # the reporter, the guard, the trimmer
      attribution_names: BloatProbe::Attribution::LIMIT + 1, # and "other"
      history_samples: BloatProbe::Recorder.new.history_size
    }.freeze
    # A process's threads and descriptors may be at most this much above their most by then.
    KERNEL_SLACK = { threads: 2, fds: 8 }.freeze
    REPORTER_CPU = 0.005 # of a core
    MIDDLEWARE_CPU = 2.0e-5 # seconds a request

    def initialize(run)
      @run = run
    end

    def all
      [requests, jobs, restarts, footprint, kernel_footprint, memory, scrapes, freshness, reporter_cpu,
       middleware_cpu]
    end

    private

    def check(name, passed, **detail)
      Check.new(name: name, ok: passed, detail: detail)
    end

    # Every page view answered 200 (an idle keep-alive connection the server closed is
    # opened again, not a failure), every heavy request too.
    def requests
      pages = @run[:outcomes].fetch(:page_views, {})
      heavy = @run[:outcomes].fetch(:heavy_requests, {})
      failed = pages.reject { |outcome, _| %w[200 closed_idle].include?(outcome) }
                    .merge(heavy.reject { |outcome, _| outcome == "200" }) { |_, a, b| a + b }
      check("no failed request", failed.empty? && pages["200"].to_i.positive?,
            page_views: pages, heavy_requests: heavy, failed: failed)
    end

    def jobs
      check("no lost job", @run[:jobs_done] == @run[:jobs_enqueued] && @run[:jobs_enqueued].positive?,
            enqueued: @run[:jobs_enqueued], done: @run[:jobs_done])
    end

    # The load crosses the budget, so the guard must have retired workers, each with a cause.
    def restarts
      named = @run[:restarts].all? { |restart| restart[:reason] && restart[:verdict] }
      check("workers retired by the guard, each with its cause", @run[:restarts].any? && named,
            count: @run[:restarts].size, causes: @run[:restarts].map { |r| "#{r[:reason]} (#{r[:verdict]})" }.tally)
    end

    def footprint
      late = @run[:footprints].select { |f| f[:t] >= @run[:steady_from] }
      most = FOOTPRINT_BOUNDS.keys.to_h { |key| [key, late.map { |f| figure(f, key) }.max] }
      ok = late.any? && most.all? { |key, value| value <= FOOTPRINT_BOUNDS[key] }
      check("the probe's footprint within fixed bounds from the tenth minute", ok,
            samples: late.size, most: most, bounds: FOOTPRINT_BOUNDS)
    end

    def figure(footprint, key)
      case key
      when :probe_objects then footprint[:objects].values.sum
      when :probe_threads then footprint[:threads]
      else footprint[key]
      end
    end

    # Each role's threads and descriptors (the kernel's count) no higher later than by the
    # tenth minute, give or take KERNEL_SLACK.
    def kernel_footprint
      early, late = @run[:samples].partition { |s| s[:t] < @run[:steady_from] }
      figures = KERNEL_SLACK.keys.product(%w[master worker sidekiq]).to_h do |key, role|
        most = ->(samples) { samples.select { |s| s[:role] == role }.map { |s| s[key] }.max }
        ["#{role} #{key}", [most.call(early), most.call(late)]]
      end
      ok = figures.all? do |name, (before, after)|
        before && after && after <= before + KERNEL_SLACK[name.split.last.to_sym]
      end
      check("threads and file descriptors flat from the tenth minute", ok, before_and_after: figures)
    end

    # A worker's RSS (the kernel's) at most its budget plus the most it grew while the
    # guard took to act (its strikes, the drain, and a second more).
    def memory
      workers = @run[:samples].select { |s| s[:role] == "worker" }.group_by { |s| s[:pid] }
      window = @run[:guard_reaction]
      growth = workers.values.map { |samples| most_growth(samples, window) }.max || 0
      most = workers.values.flatten.map { |s| s[:rss] }.max || 0
      check("every worker within its budget plus what it grew while the guard acted", most <= @run[:budget] + growth,
            most_rss: most, budget: @run[:budget], growth_in_window: growth, window_seconds: window)
    end

    def most_growth(samples, window)
      samples.each_with_index.map do |sample, i|
        later = samples[i..].take_while { |s| s[:t] - sample[:t] <= window }
        later.map { |s| s[:rss] - sample[:rss] }.max
      end.max || 0
    end

    # Every scrape answered: up = 1 in each, and as many as the time allows.
    def scrapes
      per_job = @run[:up].to_h do |series|
        values = series[:values].map(&:last)
        [series[:metric]["job"], { scrapes: values.size, down: values.count { |v| v != 1 } }]
      end
      expected = (@run[:scraped_for] / Prometheus::SCRAPE_INTERVAL).floor - 1
      ok = per_job.size == @run[:jobs].size && per_job.values.all? { |j| j[:down].zero? && j[:scrapes] >= expected }
      latency = @run[:scrape_durations].flat_map { |series| series[:values].map(&:last) }
      check("every scrape answered, up = 1 throughout", ok, jobs: per_job, expected_at_least: expected,
                                                            slowest_scrape_seconds: latency.max)
    end

    # No figure older than two report intervals when scraped: the diagnosis's own time
    # against the scrape's, in every series.
    def freshness
      ages = @run[:diagnosis_times].flat_map do |series|
        series[:values].map { |time, value| [time - value, series[:metric].except("__name__").merge("at" => time)] }
      end
      limit = 2 * @run[:report_interval]
      oldest, where = ages.max_by(&:first)
      check("no figure older than two report intervals", ages.any? && oldest <= limit,
            samples: ages.size, oldest_seconds: oldest&.round(3), oldest_series: where, limit_seconds: limit)
    end

    # The reporter thread's CPU (the kernel's count) over the time it ran, all processes
    # together.
    def reporter_cpu
      spans = @run[:samples].select { |s| s[:reporter_cpu] }.group_by { |s| s[:pid] }.values.map do |samples|
        [samples.last[:reporter_cpu] - samples.first[:reporter_cpu], samples.last[:t] - samples.first[:t]]
      end
      cpu, wall = spans.transpose.map(&:sum)
      share = wall.to_f.positive? ? cpu / wall : nil
      check("the reporter within #{REPORTER_CPU * 100}% of a core", share && share <= REPORTER_CPU,
            cpu_seconds: cpu&.round(3), seconds: wall&.round(1), share: share&.round(6))
    end

    # The attribution middleware's own CPU (its threads' clocks) per request, each worker's
    # last footprint.
    def middleware_cpu
      last = @run[:footprints].group_by { |f| f[:pid] }.values.map(&:last)
      calls = last.sum { |f| f[:attribution_calls] }
      cpu = last.sum { |f| f[:attribution_cpu_seconds] }
      per_call = calls.positive? ? cpu / calls : nil
      name = "the middleware within #{(MIDDLEWARE_CPU * 1e6).round} µs a request"
      check(name, per_call && per_call <= MIDDLEWARE_CPU,
            calls: calls, cpu_seconds: cpu.round(3), per_request_us: per_call && (per_call * 1e6).round(2))
    end
  end
end
