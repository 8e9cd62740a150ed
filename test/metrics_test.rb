# frozen_string_literal: true

require "test_helper"
require "net/http"

# BloatProbe::Metrics: the exposition format as promtool reads it, and rails-app in Puma's
# cluster mode (`plugin :bloat_probe`, 2 workers), where one scrape returns both workers'
# series and a killed worker's series are replaced by its successor's.
class MetricsTest < Minitest::Test
  include RubyChild
  include RailsAppServer

  def call(method = "GET", probe: BloatProbe::Probe.new)
    BloatProbe::Metrics.new(probe: probe).call("REQUEST_METHOD" => method)
  end

  def family_names(text)
    text.scan(/^# TYPE (\S+)/).flatten
  end

  # docs/metrics.md names each family in its table's first column: `a_{b,c}_d` stands for
  # a_b_d and a_c_d, and a brace group at the end of a name lists its labels.
  def documented_families
    table = File.read(File.expand_path("../docs/metrics.md", __dir__)).lines.grep(/\A\| `/)
    table.flat_map { |row| row.split("|")[1].scan(/`([^`]+)`/).flatten }.flat_map do |name|
      name = name.sub(/\{[^}]*\}\z/, "")
      group = name[/\{([^}]+)\}/, 1]
      group ? group.split(",").map { |part| name.sub("{#{group}}", part) } : [name]
    end
  end

  def test_every_declared_family_is_documented_and_every_documented_one_declared
    declared = BloatProbe::Metrics::Families::ALL.map(&:name)
    documented = documented_families
    assert_empty declared - documented, "declared but not in docs/metrics.md"
    assert_empty documented - declared, "in docs/metrics.md but not declared"
  end

  def test_the_exposition_passes_promtool_and_names_this_process
    status, headers, body = call
    assert_equal 200, status
    assert_equal "text/plain; version=0.0.4; charset=utf-8", headers["content-type"]
    text = body.join
    assert_equal text.bytesize.to_s, headers["content-length"]
    assert text.end_with?("\n")
    rss = Integer(text[/^process_resident_memory_bytes (\d+)$/, 1])
    assert_in_delta BloatProbe.memory.rss, rss, 8 * MiB
    assert_match(/^bloat_probe_allocator_info\{allocator="glibc",version="2\.\d+"\} 1$/, text)
    assert_match(/^bloat_probe_malloc_arenas \d+$/, text)
    assert_match(/^bloat_probe_arena_free_bytes\{arena="0"\} \d+$/, text)
    # Against readings of their own: glibc's malloc_stats counts the arenas, and the
    # kernel's smaps_rollup gives PSS (the diagnosis was taken just before).
    assert_equal BloatProbe.malloc_stats.arenas.size, Integer(text[/^bloat_probe_malloc_arenas (\d+)$/, 1])
    pss = File.read("/proc/self/smaps_rollup")[/^Pss:\s+(\d+) kB/, 1].to_i * 1024
    assert_in_delta pss, Integer(text[/^bloat_probe_proportional_memory_bytes (\d+)$/, 1]), 16 * MiB
    # One verdict at 1, the others at 0.
    assert_equal 1, text.scan(/^bloat_probe_verdict\{verdict="(\w+)"\} 1$/).size
    assert_equal BloatProbe::Diagnosis::VERDICTS.size, text.scan(/^bloat_probe_verdict\{/).size
    assert_equal text.scan(/^# TYPE (\S+)/).flatten.uniq.size, text.scan(/^# TYPE /).size, "one TYPE per family"
    assert_promtool_accepts(text)
  end

  def test_jemalloc_stats_are_exported_under_jemalloc
    path = library_path("libjemalloc.so.2")
    skip "libjemalloc2 is not installed (bin/setup installs it)" unless path

    result = run_child(<<~RUBY, { "LD_PRELOAD" => path })
      _status, _headers, body = BloatProbe::Metrics.new.call("REQUEST_METHOD" => "GET")
      puts JSON.dump(text: body.join)
    RUBY
    text = result[:text]
    assert_match(/^bloat_probe_allocator_info\{allocator="jemalloc",version="5\./, text)
    assert_match(/^bloat_probe_jemalloc_resident_bytes [1-9]\d*$/, text)
    refute_match(/^bloat_probe_malloc_arenas/, text, "no glibc arenas to count")
    assert_promtool_accepts(text)
  end

  def test_only_get_and_head
    status, headers, = call("POST")
    assert_equal 405, status
    assert_equal "GET, HEAD", headers["allow"]
    status, headers, body = call("HEAD")
    assert_equal 200, status
    assert_equal "", body.join
    assert_operator Integer(headers["content-length"]), :>, 0
  end

  def test_the_trimmer_counts_what_it_released
    trimmer = BloatProbe::Trimmer.start(interval: 0.01)
    sleep 0.2
    text = call(probe: BloatProbe::Probe.new(trimmer: trimmer))[2].join
    assert_operator Integer(text[/^bloat_probe_trimmer_trims_total (\d+)$/, 1]), :>, 0
    assert_match(/^# TYPE bloat_probe_trimmer_released_bytes_total counter$/, text)
    refute_match(/^bloat_probe_trimmer/, call[2].join, "a probe without a trimmer has no trimmer series")
  ensure
    trimmer&.stop
  end

  # Every declared family shows somewhere: under glibc with a Trimmer, or under jemalloc.
  def test_every_declared_family_is_rendered
    path = library_path("libjemalloc.so.2")
    skip "libjemalloc2 is not installed (bin/setup installs it)" unless path

    recorder = BloatProbe::Recorder.new(warmup: 0)
    # A guard that has decided once (dry-run, one strike: a restart, logged and not done).
    guard = BloatProbe::Guard.new(budget: "1M", mode: "dry-run", strikes: 1, recorder: recorder,
                                  restart: ->(_) { true }, log: ->(_) {})
    guard.tick
    probe = BloatProbe::Probe.new(trimmer: BloatProbe::Trimmer.new(interval: 60, recorder: recorder),
                                  recorder: recorder, guard: guard)
    probe.attribution.measure("posts#index") { nil }
    # Enough samples after the (empty) warm-up for a trend.
    BloatProbe::Trend::MIN_SAMPLES.times do
      probe.recorder.take
      sleep BloatProbe::Trend::MIN_SECONDS / (BloatProbe::Trend::MIN_SAMPLES - 1)
    end
    glibc = family_names(call(probe: probe)[2].join)
    jemalloc = run_child(<<~RUBY, { "LD_PRELOAD" => path })[:families]
      _status, _headers, body = BloatProbe::Metrics.new.call("REQUEST_METHOD" => "GET")
      puts JSON.dump(families: body.join.scan(/^# TYPE (\\S+)/).flatten)
    RUBY
    # A container with a memory limit (as test/docker_test.rb reads one in a real one).
    limited = BloatProbe::Metrics::Snapshot.of(probe).to_h.merge(
      cgroup: BloatProbe::Cgroup.from_h(BloatProbe.cgroup.to_h.merge(memory_limit: 512 << 20))
    )
    contained = family_names(BloatProbe::Metrics::Exposition.render(
                               BloatProbe::Metrics::Families.series(BloatProbe::Metrics::Snapshot.new(**limited))
                             ))
    assert_equal BloatProbe::Metrics::Families::ALL.map(&:name).sort, (glibc | jemalloc | contained).sort
  end

  # The largest endpoints get a label each, the rest are summed as other, and names that
  # would break the format are escaped (promtool stays silent).
  def test_endpoints_are_labelled_within_bounds
    probe = BloatProbe::Probe.new
    30.times { |i| probe.attribution.measure(%(GET /r#{i} "quoted"\\)) { "x" * (i * 1000) } }
    text = call(probe: probe)[2].join
    calls = text.scan(/^bloat_probe_endpoint_calls_total\{endpoint="(.*)"\} (\d+)$/)
    assert_equal BloatProbe::Metrics::Families::ENDPOINT_LABELS + 1, calls.size
    assert_equal(30, calls.sum { |_name, count| Integer(count) })
    assert_includes calls.map(&:first), "other"
    assert_promtool_accepts(text)
  end

  def test_a_puma_cluster_serves_every_live_worker_and_drops_a_dead_one
    server = start_rails_app("cluster", command: :rails_server,
                                        env: { "WEB_CONCURRENCY" => "2", "BLOAT_PROBE_METRICS" => "1",
                                               "BLOAT_PROBE_REPORT_INTERVAL" => "0.2",
                                               "BLOAT_PROBE_DIAGNOSIS_INTERVAL" => "1" })
    log = @log
    started = wait_for_workers(server) { |workers| workers.size == 2 }
    assert_equal %w[0 1], started.keys.sort, File.read(log)
    text = server.get("/bloat/metrics").body
    assert_promtool_accepts(text)
    assert_match(/^bloat_probe_malloc_arenas\{worker="0"\} \d+$/, text)
    assert_match(/^bloat_probe_malloc_arenas\{worker="1"\} \d+$/, text)
    assert_match(/bloat_probe pid=\d+ worker=1 verdict=\w+ rss_mib=[\d.]+/, File.read(log), "the logfmt line")

    victim_pid = Integer(File.read(log)[/bloat_probe pid=(\d+) worker=1 /, 1])
    Process.kill("KILL", victim_pid)
    replaced = wait_for_workers(server) { |workers| workers.size == 2 && workers["1"] != started["1"] }
    refute_equal started["1"], replaced["1"], "worker 1 is a new process: #{File.read(log)[-2000..]}"
    assert_equal started["0"], replaced["0"], "worker 0 lives on"
  end

  private

  # { worker index => process_start_time_seconds } from scrapes, until the block is
  # satisfied (bounded: 30 s).
  def wait_for_workers(server)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 30
    workers = {}
    while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
      text = server.get("/bloat/metrics").body
      workers = text.scan(/^process_start_time_seconds\{worker="(\d+)"\} (\S+)$/).to_h
      return workers if yield(workers)

      sleep 0.2
    end
    workers
  end

  def assert_promtool_accepts(text)
    out, status = Open3.capture2e("promtool", "check", "metrics", stdin_data: text)
    assert status.success?, out
    assert_equal "", out, "promtool's remarks"
  end
end
