# frozen_string_literal: true

require "test_helper"

# BloatProbe.thread_arena against malloc_info, in processes of their own (nothing else
# allocates there while the figures are compared).
class ThreadArenaTest < Minitest::Test
  include RubyChild

  # Eight threads, alive together, each with a block of its own: eight arenas, and each
  # thread's reading is malloc_info's entry for its index, to the byte.
  def test_each_thread_reads_its_arena_as_malloc_info_reports_it
    result = run_child(<<~RUBY)
      ready = Queue.new
      go = Queue.new
      threads = Array.new(8) do |i|
        Thread.new do
          held = "x" * (100_000 + i)
          ready << true
          go.pop
          [BloatProbe.thread_arena.to_h, held.size]
        end
      end
      8.times { ready.pop }
      8.times { go << true }
      readings = threads.map { |t| t.value.first }
      stats = BloatProbe.arena_stats
      listed = stats.arenas.map { |a| { index: a.index, system: a.system, system_max: a.system_max } }
      puts JSON.dump(readings: readings, listed: listed, main: BloatProbe.thread_arena.to_h)
    RUBY
    readings = result[:readings]
    assert readings.all? { |reading| reading[:available] }, readings.inspect
    assert_equal 8, readings.map { |reading| reading[:index] }.uniq.size, "one arena per thread"
    readings.each do |reading|
      listed = result[:listed].fetch(reading[:index])
      assert_equal listed.slice(:system, :system_max), reading.slice(:system, :system_max), reading.inspect
      assert_operator reading[:attached_threads], :>=, 1
    end
    assert_equal 0, result[:main][:index], "Ruby's main thread allocates from the main arena"
  end

  def test_a_process_with_the_main_arena_alone_says_why_it_cannot_tell
    result = run_child("puts JSON.dump(BloatProbe.thread_arena.to_h)")
    refute result[:available]
    assert_match(/main arena/, result[:reason])
    assert_nil result[:system]
  end

  def test_under_jemalloc_it_says_so_rather_than_read_glibc
    path = library_path("libjemalloc.so.2")
    skip "libjemalloc2 is not installed (bin/setup installs it)" unless path

    result = run_child("puts JSON.dump(BloatProbe.thread_arena.to_h)", { "LD_PRELOAD" => path })
    refute result[:available]
    assert_match(/\Ajemalloc .* serves this process, not glibc's arenas\z/, result[:reason])
  end
end
