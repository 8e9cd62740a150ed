# frozen_string_literal: true

require "test_helper"
require "net/http"
require "nokogiri"
require_relative "../bench/allocator_bench/load"

# BLOAT_PROBE_TRIAL's remedies: each mallopt remedy seen to act in a fresh process by
# glibc's own readings, against a control that runs the same allocations without it; and
# every trial that cannot be run refused at boot, naming the setting.
class TrialTest < Minitest::Test
  include RubyChild
  include RailsAppServer

  Trial = BloatProbe::Trial

  # The same allocations with and without one mallopt call: 8 native threads keep 16 KiB
  # blocks, one thread keeps 100 KiB blocks, then everything is freed.
  EFFECTS = <<~RUBY
    BloatProbe.mallopt(*REMEDY) if REMEDY
    small = BloatProbe.churn(count: 1000, min_size: 16 << 10, max_size: 16 << 10, retain: 1.0, window: 0, threads: 8)
    arenas = BloatProbe.arena_stats.arena_count
    before = BloatProbe.mallinfo
    large = BloatProbe.churn(count: 50, min_size: 100 << 10, max_size: 100 << 10, retain: 1.0, window: 0, threads: 1)
    mmapped = BloatProbe.mallinfo.hblkhd - before.hblkhd
    large.release
    small.release
    puts JSON.generate(arenas: arenas, mmapped: mmapped, system_before: before.arena,
                       system_after: BloatProbe.mallinfo.arena)
  RUBY

  def effects(remedy)
    run_child("REMEDY = #{remedy.inspect}\n#{EFFECTS}")
  end

  def test_each_malloc_parameter_acts_as_glibc_says
    control = effects(nil)
    assert_operator control[:arenas], :>, 2, "8 threads make arenas of their own"
    assert_equal 2, effects([:arena_max, 2])[:arenas]
    assert_operator control[:mmapped], :<, 1 * MiB, "100 KiB blocks come from an arena by default"
    assert_operator effects([:mmap_threshold, 64 << 10])[:mmapped], :>=, 50 * (100 << 10), "mmapped past 64 KiB"
    assert_operator control[:system_after], :<, control[:system_before] / 4, "glibc hands back freed heap tops"
    kept = effects([:trim_threshold, 1 << 30])
    assert_operator kept[:system_after], :>, kept[:system_before] / 2, "not under a 1 GiB trim threshold"
  end

  def test_bad_values_name_the_parameter_and_its_range
    assert_raises_with(RangeError, "arena_max must be in 1..1024, got 0") { BloatProbe.mallopt(:arena_max, 0) }
    assert_raises_with(RangeError, "mmap_threshold must be in 0..33554432, got 67108864") do
      BloatProbe.mallopt(:mmap_threshold, 64 << 20)
    end
    assert_raises_with(TypeError, 'arena_max must be an Integer, got "2" (String)') do
      BloatProbe.mallopt(:arena_max, "2")
    end
    assert_raises_with(ArgumentError,
                       "parameter must be one of :arena_max, :mmap_threshold, :trim_threshold, got :top_pad") do
      BloatProbe.mallopt(:top_pad, 1)
    end
  end

  def test_a_trial_gives_worker_zero_the_control_and_each_next_worker_a_remedy
    trial = Trial.from_env(workers: 4, trimmer: false, env: { "BLOAT_PROBE_TRIAL" => " arena_max=2, trim " })
    assert_equal(%w[control arena_max=2 trim control], (0..3).map { |index| trial.remedy_for(index).to_s })
    assert_equal ["mmap_threshold", 65_536],
                 Trial.from_env(workers: 2, trimmer: false, env: { "BLOAT_PROBE_TRIAL" => "mmap_threshold=64K" })
                      .remedy_for(1).to_a.first(2)
    assert_nil Trial.from_env(workers: 2, trimmer: false, env: { "BLOAT_PROBE_TRIAL" => " " })
  end

  def test_a_trial_that_cannot_run_stops_the_boot_naming_the_setting
    {
      ["top_pad=1", 2] => /unknown remedy "top_pad=1"; the remedies are arena_max=…, mmap_threshold=…/,
      ["arena_max=0", 2] => /arena_max must be a whole number in 1\.\.1024, got "0"/,
      ["mmap_threshold=64", 2] => /mmap_threshold must be bytes with a unit .* got "64"/,
      ["arena_max=2,trim", 2] => /2 remedies need 3 workers \(worker 0 is the control\), and Puma runs 2/,
      ["arena_max=2", 0] => /needs Puma's cluster mode/
    }.each do |(setting, workers), message|
      error = assert_raises(BloatProbe::SettingError, setting) do
        Trial.from_env(workers: workers, trimmer: false, env: { "BLOAT_PROBE_TRIAL" => setting })
      end
      assert_match(/\ABLOAT_PROBE_TRIAL/, error.message)
      assert_match message, error.message
    end
    error = assert_raises(BloatProbe::SettingError) do
      Trial.from_env(workers: 2, trimmer: true, env: { "BLOAT_PROBE_TRIAL" => "trim" })
    end
    assert_match(/BLOAT_PROBE_TRIM_INTERVAL starts a Trimmer in every worker/, error.message)
  end

  def test_puma_does_not_boot_with_a_trial_it_cannot_run
    env = { "WEB_CONCURRENCY" => "2", "BLOAT_PROBE_TRIAL" => "arena_max=2,trim", "RAILS_ENV" => "production",
            "PORT" => AllocatorBench::ChildProcess.free_port.to_s }
    _out, err, status = Open3.capture3(env, "timeout", "60", "bundle", "exec", "puma", "-C", "config/puma.rb",
                                       chdir: File.expand_path("../rails-app", __dir__))
    refute status.success?
    assert_match(/BLOAT_PROBE_TRIAL: 2 remedies need 3 workers .* \(BloatProbe::SettingError\)/, err)
    single = env.merge("WEB_CONCURRENCY" => "0", "BLOAT_PROBE_TRIAL" => nil, "BLOAT_PROBE_COMPACT_BEFORE_FORK" => "1")
    _out, err, status = Open3.capture3(single, "timeout", "60", "bundle", "exec", "puma", "-C", "config/puma.rb",
                                       chdir: File.expand_path("../rails-app", __dir__))
    refute status.success?
    assert_match(/BLOAT_PROBE_COMPACT_BEFORE_FORK needs Puma's cluster mode .* \(BloatProbe::SettingError\)/, err)
  end

  def test_under_jemalloc_the_trial_says_to_compare_allocators_with_ld_preload
    jemalloc = library_path("libjemalloc.so.2") || flunk("libjemalloc2: bin/setup installs it")
    result = run_child(<<~RUBY, { "LD_PRELOAD" => jemalloc })
      error = begin
        BloatProbe::Trial.from_env(workers: 2, trimmer: false, env: { "BLOAT_PROBE_TRIAL" => "arena_max=2" })
      rescue BloatProbe::SettingError => e
        e.message
      end
      puts JSON.generate(error: error)
    RUBY
    assert_match(/allocates with jemalloc .* cannot be swapped after fork: .*LD_PRELOAD/, result[:error])
  end

  # rails-app as 2 workers, worker 1 under arena_max=2, both under the web mix's churn
  # route: the remedy holds worker 1's arenas to those it had at fork, and its private
  # memory below the control's, as the single-process bench finds glibc ÷ arena2 > 1.
  def test_in_a_cluster_the_arena_max_worker_keeps_its_arenas_and_less_private_memory
    port = AllocatorBench::ChildProcess.free_port
    env = { "WEB_CONCURRENCY" => "2", "BLOAT_PROBE_TRIAL" => "arena_max=2", "BLOAT_PROBE_METRICS_PORT" => port.to_s,
            "BLOAT_PROBE_REPORT_INTERVAL" => "0.5", "BLOAT_PROBE_WARMUP" => "0" }
    server = start_rails_app("trial", threads: 12, env: env)
    # The web mix's routes, a churn in twenty: a heavy request lands on whichever thread's arena.
    mix = AllocatorBench::Mix::ROUTES.values_at("strings", "churn")
    clients = Array.new(24) do |t|
      Thread.new { 100.times { |i| server.get(mix[i % 20 == t % 20 ? 1 : 0].call((t * 100) + i)) } }
    end
    clients.each(&:join)
    sleep 1.2 # two report intervals: each worker publishes what the load left
    scrape = Net::HTTP.get(URI("http://127.0.0.1:#{port}/metrics"))
    control = worker_figures(scrape, 'worker="0",remedy="control"')
    remedy = worker_figures(scrape, 'worker="1",remedy="arena_max=2"')
    at_fork = sample(scrape, "bloat_probe_malloc_arenas", 'worker="master"')
    figures = "control: #{control}; arena_max=2: #{remedy}; #{at_fork} arenas at fork"
    assert_operator [control.churns, remedy.churns].min, :>=, 30, "each served a quarter of the churns: #{figures}"
    assert_operator control.arenas, :>, at_fork + 2, figures
    assert_operator remedy.arenas, :<=, at_fork + 2, figures
    assert_operator remedy.private, :<=, control.private * 0.7, figures
    log = File.read(@log)
    assert_match(/worker=0 remedy=control verdict=/, log)
    assert_match(/worker=1 remedy="arena_max=2" verdict=/, log)
    assert_trial_line_agrees(log.scan(/^\[\d+\] (bloat_probe trial .*)$/).flatten.last, control, remedy)
    assert_dashboard_shows_the_workers_and_the_trial(Nokogiri::HTML(server.get("/bloat?refresh=0").body))
  end

  # The dashboard's rows against the kernel's reading of each worker's smaps_rollup, its
  # trial table against those rows, and a chart of each worker's history.
  def assert_dashboard_shows_the_workers_and_the_trial(page)
    rows = page.css("#workers tr[data-worker]").to_h { |row| [row["data-worker"], row] }
    assert_equal %w[0 1 master], rows.keys.sort
    private = %w[0 1].to_h do |worker|
      shown = Integer(rows[worker].at_css("td.private")["data-bytes"])
      kernel = File.read("/proc/#{Integer(rows[worker]["data-pid"])}/smaps_rollup")
                   .scan(/^Private_(?:Clean|Dirty):\s+(\d+) kB/).sum { |(kb)| Integer(kb) * 1024 }
      assert_in_delta kernel, shown, (kernel * 0.1) + (4 << 20), "worker #{worker}'s private memory"
      assert_operator page.css("#worker-#{worker}-chart polyline.private").first["points"].split.size, :>=, 2
      [worker, shown]
    end
    assert_equal "arena_max=2", rows["1"].at_css("td:nth-child(3)").text
    shown_ratio = Float(page.at_css('#trial tr[data-remedy="arena_max=2"] td.private_ratio').text.delete("×"))
    assert_in_delta private["1"].fdiv(private["0"]), shown_ratio, 0.01, "the trial table's private ratio"
  end

  # The master's last trial line against the scrape taken just before it, once the load had
  # ended: the same workers' published figures.
  def assert_trial_line_agrees(line, control, remedy)
    refute_nil line, "the master logs a trial line"
    fields = line.scan(/(\w+)=("[^"]*"|\S+)/).to_h { |key, value| [key.to_sym, value.delete('"')] }
    assert_equal ["arena_max=2", "1"], fields.values_at(:remedy, :workers), line
    assert_operator Integer(fields[:requests]), :>=, remedy.churns, line
    assert_operator Integer(fields[:control_requests]), :>=, control.churns, line
    assert_in_delta remedy.private.fdiv(control.private), Float(fields[:private_ratio]), 0.05, line
    assert_in_delta remedy.arenas.fdiv(control.arenas), Float(fields[:arenas_ratio]), 0.01, line
    %i[pss_ratio p50_ratio p99_ratio].each { |ratio| assert_operator Float(fields[ratio]), :>, 0, line }
  end

  # One worker's figures from a scrape.
  WorkerFigures = Struct.new(:churns, :arenas, :private) do
    def to_s
      "#{churns} churns, #{arenas} arenas, #{private >> 20} MiB private"
    end
  end

  def worker_figures(scrape, labels)
    private = %w[clean dirty].sum { |state| sample(scrape, "bloat_probe_private_bytes", %(#{labels},state="#{state}")) }
    WorkerFigures.new(sample(scrape, "bloat_probe_endpoint_calls_total", %(#{labels},endpoint="workloads#churn")),
                      sample(scrape, "bloat_probe_malloc_arenas", labels), private)
  end

  def sample(scrape, name, labels)
    scrape[/^#{Regexp.escape(name)}\{#{Regexp.escape(labels)}\} (\d+)$/, 1]&.to_i ||
      flunk("no #{name}{#{labels}} in the scrape:\n#{scrape}")
  end

  private

  def assert_raises_with(klass, message, &block)
    assert_equal message, assert_raises(klass, &block).message
  end
end
