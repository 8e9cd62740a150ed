# frozen_string_literal: true

require "English"
require "test_helper"
require "json"
require "rexml/document"

# rake bench on a tiny load: two configurations, a few hundred requests, a short tail.
class BenchTest < Minitest::Test
  include ProcessTree
  ROOT = File.expand_path("..", __dir__)
  SCRIPT = File.join(ROOT, "bench/allocator_bench.rb")

  def bench_env(results)
    { "CONFIGS" => "glibc,arena2", "REQUESTS" => "300", "IDLE" => "2", "RESULTS_DIR" => results,
      "MIX" => "posts:1,strings:3,churn:1", "PLOT" => "1" }
  end

  def test_a_small_run_writes_a_full_table_json_svg_and_html_report
    Dir.mktmpdir("bloat_probe-bench") do |results|
      out, err, status = Open3.capture3(bench_env(results), "timeout", "--kill-after=5", "300", RbConfig.ruby, SCRIPT,
                                        chdir: ROOT)
      assert status.success?, "bench failed:\n#{err}\n#{out}"
      json_path = out[/^JSON: +(\S+)/, 1]
      svg_path = out[/^SVG: +(\S+)/, 1]
      html = File.read(out[/^Report: (\S+)/, 1])
      assert_equal %w[glibc arena2], html.scan(/<tr data-config="([^"]+)"/).flatten.uniq
      report = JSON.parse(File.read(json_path), symbolize_names: true)
      rows = report[:rows].to_h { |row| [row[:config], row] }
      assert_equal %w[glibc arena2], rows.keys
      rows.each_value do |row|
        %i[rps p50_ms p99_ms rss_start rss_peak rss_end_of_load rss_after_idle arena_count in_use free].each do |key|
          assert_kind_of Numeric, row[key], "#{row[:config]} #{key}"
        end
        assert_equal 0, row[:errors], row[:config]
      end
      assert_operator rows["glibc"][:arena_count], :>, 1
      assert_operator rows["arena2"][:arena_count], :<=, 2
      svg = REXML::Document.new(File.read(svg_path))
      assert_equal "svg", svg.root.name
      assert_equal 2, REXML::XPath.match(svg, "//polyline[@class='median']").size
      tradeoff = REXML::Document.new(File.read(svg_path.sub(/\.svg\z/, "-tradeoff.svg")))
      points = REXML::XPath.match(tradeoff, "//*[@class='marker']")
      assert_equal %w[glibc arena2 glibc arena2], points.map { |point| point.elements["title"].text },
                   "one point per configuration in each panel"
      glibc_y, arena2_y = points.first(2).map do |point|
        point.attributes["cy"]&.to_f || (point.attributes["y"].to_f + (point.attributes["height"].to_f / 2))
      end
      assert_operator glibc_y, :<, arena2_y, "glibc's larger RSS after idle is drawn higher"
      assert_match(/^glibc +\d+/, out)
      assert_match(/^arena2 +\d+/, out)
      plot = out[/RSS \(MB\) over seconds.*?(?=^Report:)/m]
      assert plot, "the terminal plot is drawn:\n#{out}"
      assert_match(/[\u2801-\u28ff]/, plot, "braille dots of the lines")
      assert_match(/glibc/, plot)
      assert_match(/arena2/, plot)
      report[:runs].each do |run|
        refute File.exist?("/proc/#{run[:server_pid]}"), "server #{run[:server_pid]} is still running"
      end
      assert_findings(out, report)
      assert_plain_progress(err)
    end
  end

  # WORKERS=2: a master and two workers of 12 threads; memory is what the container is
  # charged (the sum of their PSS), and the workers' shared and private memory is read
  # beside it. warmup runs in cluster mode only, and its master logs what it did.
  def test_cluster_mode_reports_the_pss_sum_shared_fraction_and_private_memory_per_worker
    Dir.mktmpdir("bloat_probe-bench") do |results|
      env = bench_env(results).merge("WORKERS" => "2", "CONFIGS" => "glibc,warmup", "REQUESTS" => "200", "PLOT" => "0")
      out, err, status = Open3.capture3(env, "timeout", "--kill-after=5", "300", RbConfig.ruby, SCRIPT, chdir: ROOT)
      assert status.success?, "bench failed:\n#{err}\n#{out}"
      assert_match(/^config .* PSS sum start +PSS sum peak +PSS sum end +PSS sum idle /, out)
      assert_match(%r{^workers +shared start +shared end +shared idle +private/worker end +private/worker idle$}, out)
      assert_match(/^With warmup before fork the workers shared \d+% of their RSS at the start/, out)
      report = JSON.parse(File.read(out[/^JSON: +(\S+)/, 1]), symbolize_names: true)
      assert_equal [2, 12], report[:settings].values_at(:workers, :threads)
      report[:runs].each do |run|
        assert_equal 2, run[:workers_private].size, run[:config]
        %i[shared_fraction_start shared_fraction_end_of_load shared_fraction_after_idle].each do |key|
          assert_includes 0.0..1.0, run[key], "#{run[:config]} #{key}"
        end
        # Right after boot the workers share most of what the master loaded; the load then
        # makes most of their memory their own.
        assert_operator run[:shared_fraction_start], :>, run[:shared_fraction_after_idle], run[:config]
        assert_operator run[:worker_private_after_idle], :>, run[:worker_private_end_of_load] / 2, run[:config]
        # PSS counts each worker's private pages in full, and the master and shared pages besides.
        assert_operator run[:rss_after_idle], :>=, 2 * run[:worker_private_after_idle], run[:config]
      end
      logs = Dir[File.join(results, "*-warmup-1.log")]
      # The server runs on this Ruby: Process.warmup from Ruby 3.3 on, its steps by hand before.
      ran = Process.respond_to?(:warmup) ? "Process.warmup" : '"GC.start, GC.compact, malloc_trim"'
      assert_match(/bloat_probe before_fork ran=#{Regexp.escape(ran)} seconds=[\d.]+ rss_mib=/,
                   File.read(logs.fetch(0)))
      refute_match(/before_fork/, File.read(Dir[File.join(results, "*-glibc-1.log")].fetch(0)))
    end
  end

  def test_warmup_needs_cluster_mode
    require_relative "../bench/allocator_bench"
    single = AllocatorBench::Settings.from_env("CONFIGS" => "glibc,warmup")
    assert_equal "it acts before Puma forks: cluster mode only (WORKERS=1 or more)",
                 single.configs.last.missing(cluster: false)
    assert_nil single.configs.last.missing(cluster: true)
    assert_equal "warmup", AllocatorBench::Settings.from_env("WORKERS" => "3").configs.last.name
    assert_equal 8, AllocatorBench::Settings.from_env("WORKERS" => "3").threads
  end

  def test_on_a_terminal_the_progress_is_a_bar_with_elapsed_time_and_an_estimate
    require "pty"
    Dir.mktmpdir("bloat_probe-bench") do |results|
      env = bench_env(results).merge("CONFIGS" => "glibc", "REQUESTS" => "100", "IDLE" => "1", "PLOT" => "0")
      screen = +""
      PTY.spawn(env, "timeout", "--kill-after=5", "120", RbConfig.ruby, SCRIPT, chdir: ROOT) do |reader, _writer, pid|
        begin
          reader.each_char { |char| screen << char }
        rescue Errno::EIO
          nil # the terminal closes when the bench exits
        end
        Process.wait(pid)
      end
      assert $CHILD_STATUS.success?, screen
      assert_match(%r{\rglibc: load, \d+/100 requests \|[= ]+\| Time: \d\d:\d\d:\d\d, ETA: \d\d:\d\d:\d\d}, screen)
      assert_match(/\rdone \|=+\| Time: \d\d:\d\d:\d\d\r\n/, screen)
      refute_match(/Time: [\d:]+,Time/, screen)
    end
  end

  def test_bad_settings_stop_it_at_once_with_a_message
    Dir.mktmpdir("bloat_probe-bench") do |results|
      {
        { "CONFIGS" => "," } => /CONFIGS names no configuration, got ","/,
        { "CONFIGS" => "glibc,nope" } => /unknown configuration "nope"/,
        { "MIX" => "," } => /MIX names no route, got ","/,
        { "MIX" => "posts:0" } => /MIX weight for posts must be a whole number in 1\.\.1000, got "0"/,
        { "REQUESTS" => "0" } => /REQUESTS must be a whole number in 1\.\.1000000000, got "0"/,
        { "CONCURRENCY" => "abc" } => /CONCURRENCY must be a whole number in 1\.\.1000000000, got "abc"/,
        { "PRESET" => "nope" } => /PRESET must be one of seed \(or unset\), got "nope"/,
        { "WORKLOAD" => "nope" } => /WORKLOAD must be one of web, sidekiq \(or unset\), got "nope"/,
        { "WORKLOAD" => "sidekiq",
          "PRESET" => "seed" } => /PRESET=seed is a web load; it does not go with WORKLOAD=sidekiq/,
        { "WORKLOAD" => "sidekiq", "JOBS" => "-3" } => /JOBS must be a whole number in 1\.\.1000000000, got "-3"/,
        { "WORKERS" => "65" } => /WORKERS must be a whole number in 0\.\.64, got "65"/,
        { "WORKLOAD" => "sidekiq", "WORKERS" => "2" } => /WORKERS=2 is Puma's cluster mode; WORKLOAD=sidekiq has none/
      }.each do |env, message|
        out, status = Open3.capture2e(bench_env(results).merge(env), "timeout", "--kill-after=5", "30",
                                      RbConfig.ruby, SCRIPT, chdir: ROOT)
        assert_equal 1, status.exitstatus, "#{env}: #{out}"
        assert_match(/\Arake bench: /, out, env.inspect)
        assert_match message, out
      end
      assert_empty Dir[File.join(results, "*.json")], "no report from a run that did not start"
    end
  end

  # PRESET=seed: the seed's ab load on its three configurations; what is set explicitly wins.
  def test_the_seed_preset
    require_relative "../bench/allocator_bench"
    seed = AllocatorBench::Settings.from_env("PRESET" => "seed", "MIX" => "")
    assert_equal %w[glibc arena2 jemalloc], seed.configs.map(&:name)
    assert_equal [1000, 25, "index:1"], [seed.requests, seed.concurrency, seed.mix.to_s]
    assert_equal ["/posts"], seed.mix.paths.uniq
    mine = AllocatorBench::Settings.from_env("PRESET" => "seed", "REQUESTS" => "50", "CONFIGS" => "glibc")
    assert_equal [["glibc"], 50, "seed"], [mine.configs.map(&:name), mine.requests, mine.preset]
  end

  # Fewer requests than wrk has threads, or one connection: wrk still runs, and stops.
  def test_one_request_or_one_connection_runs_and_stops
    Dir.mktmpdir("bloat_probe-bench") do |results|
      [{ "REQUESTS" => "1" }, { "CONCURRENCY" => "1", "REQUESTS" => "20" }].each do |env|
        env = bench_env(results).merge("CONFIGS" => "glibc", "IDLE" => "1", "PLOT" => "0").merge(env)
        out, status = Open3.capture2e(env, "timeout", "--kill-after=5", "120", RbConfig.ruby, SCRIPT, chdir: ROOT)
        assert status.success?, "#{env}: #{out}"
        report = JSON.parse(File.read(out[/^JSON: +(\S+)/, 1]), symbolize_names: true)
        assert_operator report[:rows].first[:rps], :>, 0, env.inspect
      end
    end
  end

  def test_a_server_that_fails_to_boot_gets_a_row_and_its_log
    Dir.mktmpdir("bloat_probe-bench") do |results|
      env = bench_env(results).merge("CONFIGS" => "glibc", "DATABASE_URL" => "nonsense://nowhere/db")
      out, err, status = Open3.capture3(env, "timeout", "--kill-after=5", "120", RbConfig.ruby, SCRIPT, chdir: ROOT)
      assert status.success?, err
      assert_match(/^glibc +failed: the server exited while booting/, out)
      # Rails 6.1: "Could not load the 'nonsense' Active Record adapter"; 7.2: "nonexistent 'nonsense' adapter".
      assert_match(/'nonsense'( Active Record)? adapter/, err)
    end
  end

  def test_a_configuration_whose_library_is_missing_gets_a_row_and_the_rest_runs
    require_relative "../bench/allocator_bench"
    Dir.mktmpdir("bloat_probe-bench") do |results|
      absent = AllocatorBench::Configuration.new(name: "absent", library: "libbloat_probe_absent.so.1",
                                                 package: "libbloat-probe-absent1", summary: "not installed anywhere")
      glibc = AllocatorBench::Configuration.select("glibc")
      settings = AllocatorBench::Settings.from_env(bench_env(results).merge("REQUESTS" => "100", "IDLE" => "1"))
      settings.configs = [absent, *glibc]
      runs = silence_stderr { AllocatorBench::Runner.new(settings).run }
      table = AllocatorBench::Report.new(runs, settings.to_h).table
      assert_match(
        /^absent +skipped: libbloat_probe_absent\.so\.1 not found \(apt-get install libbloat-probe-absent1\)$/, table
      )
      assert_match(/^glibc +\d+ +\d+/, table)
      assert_operator runs.last[:rss_after_idle], :>, 0
    end
  end

  def test_ctrl_c_stops_every_server_it_started
    Dir.mktmpdir("bloat_probe-bench") do |results|
      env = bench_env(results).merge("REQUESTS" => "100000", "CONFIGS" => "glibc")
      Open3.popen3(env, RbConfig.ruby, SCRIPT, chdir: ROOT) do |_in, _out, err, waiter|
        @bench_pid = waiter.pid
        # Wait until the load runs, then interrupt as Ctrl-C would.
        Timeout.timeout(120) { err.each_line { |line| break if line.include?("load,") } }
        servers = children_of(waiter.pid).select { |pid| command_of(pid).include?("puma") }
        refute_empty servers
        Process.kill("INT", waiter.pid)
        status = Timeout.timeout(60) { waiter.value }
        refute status.success?
        servers.each { |pid| refute File.exist?("/proc/#{pid}"), "server #{pid} outlived the bench" }
      end
    end
  end

  def teardown
    # Should an assertion fail midway, the bench still must not be left running.
    Process.kill("KILL", @bench_pid) if @bench_pid && File.exist?("/proc/#{@bench_pid}")
  rescue Errno::ESRCH
    nil
  end

  private

  # The sentences after the table restate figures of this run's JSON rows.
  def assert_findings(out, report)
    rows = report[:rows].to_h { |row| [row[:config], row] }
    findings = report[:findings]
    assert_equal 4, findings.size, findings.inspect
    findings.each { |sentence| assert_includes out, sentence }
    glibc = rows["glibc"]
    arena2 = rows["arena2"]
    best = rows.values.min_by { _1[:rss_after_idle] }
    assert_match(/^Lowest RSS after the idle tail: #{best[:config]}, #{format("%.0f", best[:rss_after_idle] / 1e6)} MB/,
                 findings[0])
    assert_includes findings[1], format("glibc's RSS was %.1f× the memory in use", glibc[:rss_per_in_use])
    assert_includes findings[2],
                    format("glibc's RSS was %.2f× arena2's", glibc[:rss_end_of_load].fdiv(arena2[:rss_end_of_load]))
    # The mix's heavy request (churn, 8000 blocks held at once) sets the high-water marks.
    top = glibc[:raisers].first
    assert_equal "workloads#churn", top[:name]
    assert_match(/\AUnder glibc, workloads#churn raised the arenas' high-water marks most: \d+ MB, \d+%/, findings[3])
    assert_match(/^glibc: workloads#churn \d+ MB \(\d+%\)/, out, "the top three per configuration")
  end

  # Not a terminal: one plain line per phase, with the elapsed time, and an estimate once
  # the first configuration has run.
  def assert_plain_progress(err)
    assert_match(/^glibc: booting \(0%, Time: 00:00:\d\d, ETA: \?\?:\?\?:\?\?\)$/, err)
    assert_match(%r{^glibc: load, \d+/300 requests \(\d+%, Time: \d\d:\d\d:\d\d, ETA: \d\d:\d\d:\d\d\)$}, err)
    assert_match(/^arena2: booting \(50%, Time: \d\d:\d\d:\d\d, ETA: \d\d:\d\d:\d\d\)$/, err)
    assert_match(/^done \|=+\| Time: \d\d:\d\d:\d\d$/, err)
    refute_match(/\r/, err, "no redrawing outside a terminal")
  end

  def silence_stderr
    saved = $stderr
    $stderr = File.open(File::NULL, "w")
    yield
  ensure
    $stderr.close
    $stderr = saved
  end
end
