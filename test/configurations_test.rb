# frozen_string_literal: true

require "test_helper"
require "etc"
require "net/http"
require_relative "../bench/allocator_bench/configuration"
require_relative "../bench/allocator_bench/server"

# The bench's extra configurations (CONFIGS=all) take effect in the servers it starts:
# read back from the running process, not from the environment it was given.
class ConfigurationsTest < Minitest::Test
  include RubyChild

  def test_the_default_six_and_all
    names = ->(spec) { AllocatorBench::Configuration.select(spec).map(&:name) }
    assert_equal %w[glibc arena2 jemalloc trim tcmalloc mimalloc], names.call(nil)
    assert_equal names.call(nil) + %w[jemalloc-tuned jemalloc-bg arena4 yjit mmap-fixed trim-1s warmup no-probe],
                 names.call("all")
    assert_equal [*names.call(nil), "warmup"], AllocatorBench::Configuration.select(nil, cluster: true).map(&:name)
    assert_equal %w[arena4 glibc], names.call("arena4, glibc")
  end

  def test_jemalloc_settings_reach_the_server
    with_server("jemalloc-tuned") do |server, stats|
      assert_equal :jemalloc, stats.arena_stats.allocator
      # arenas.narenas counts jemalloc's own arena for huge allocations too: 2 + 1.
      assert_equal 3, stats.arena_stats.jemalloc.narenas, "narenas:2"
      assert_includes thread_names(server.pid), "jemalloc_bg_thd", "background_thread:true"
    end
    with_server("jemalloc-bg") do |server, stats|
      assert_equal 4 * Etc.nprocessors + 1, stats.arena_stats.jemalloc.narenas, "jemalloc's default"
      assert_includes thread_names(server.pid), "jemalloc_bg_thd"
    end
    with_server("jemalloc") do |server, _stats|
      refute_includes thread_names(server.pid), "jemalloc_bg_thd", "no background thread by default"
    end
  end

  def test_arena4_caps_the_arenas_of_25_busy_threads
    with_server("arena4") do |_server, stats|
      assert_includes 2..4, stats.arena_stats.arena_count
    end
  end

  def test_yjit_is_on_in_the_server
    skip "this Ruby was built without YJIT" unless defined?(RubyVM::YJIT)

    with_server("yjit") { |_server, stats| assert_equal true, stats.process[:yjit] }
    with_server("glibc") { |_server, stats| assert_equal false, stats.process[:yjit] }
  end

  # glibc raises its mmap threshold to the size of a freed mmapped chunk: after a 1 MiB
  # block comes and goes, 256 KiB blocks come from the arenas. Fixed at 128 KiB by
  # MALLOC_MMAP_THRESHOLD_, they stay mmapped chunks (mallinfo2's hblks).
  def test_mmap_fixed_keeps_the_threshold_where_it_was_set
    code = <<~RUBY
      BloatProbe.churn(count: 1, min_size: 1 << 20, max_size: 1 << 20, window: 0)
      # No GC meanwhile: it could free one of Ruby's own mmapped buffers and hide a block.
      GC.disable
      before = BloatProbe.mallinfo.hblks
      kept = BloatProbe.churn(count: 8, min_size: 256 << 10, max_size: 256 << 10, retain: 1.0, window: 0)
      puts JSON.dump(mmapped: BloatProbe.mallinfo.hblks - before)
    RUBY
    fixed = AllocatorBench::Configuration.select("mmap-fixed").first.server_env
    assert_equal 8, run_child(code, fixed)[:mmapped], "mmap-fixed: each 256 KiB block is mmapped"
    assert_equal 0, run_child(code, { "MALLOC_MMAP_THRESHOLD_" => nil })[:mmapped],
                 "glibc's default: the threshold rose"
  end

  private

  # The server under 25 clients' small churn requests (each Puma thread allocates), then
  # its /bloat/stats.json.
  def with_server(name)
    config = AllocatorBench::Configuration.select(name).first
    log = scratch_log("bloat_probe-config")
    server = AllocatorBench::Server.new(config, threads: 25, log_path: log).start
    Array.new(25) do
      Thread.new do
        Net::HTTP.start("127.0.0.1", server.port, read_timeout: 60) do |http|
          4.times { |i| http.get("/workload/churn?count=200&seed=#{i}").code }
        end
      end
    end.each(&:join)
    yield server, server.stats
  ensure
    server&.stop
  end

  def thread_names(pid)
    Dir["/proc/#{pid}/task/*/comm"].map { |path| File.read(path).strip }
  end
end
