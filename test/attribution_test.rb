# frozen_string_literal: true

require "test_helper"

# BloatProbe::Attribution against glibc's own account: what it attributes to each name adds
# up to how far malloc_info says the arenas' high-water marks rose.
class AttributionTest < Minitest::Test
  include RubyChild

  # Four threads alive together, each on an arena of its own: one runs a heavy call (a
  # window of 40 MiB), the others light ones.
  def test_the_heavy_call_takes_the_growth_and_the_sum_matches_malloc_info
    result = run_child(<<~RUBY, {}, timeout: 120)
      attribution = BloatProbe::Attribution.new
      marks = -> { BloatProbe.arena_stats.arenas.sum(&:system_max) }
      ready = Queue.new
      go = Queue.new
      threads = Array.new(4) do |i|
        Thread.new do
          BloatProbe.churn(count: 10, max_size: 4096) # this thread's arena, before the count starts
          ready << true
          go.pop
          name, count = i.zero? ? ["export#run", 5_000] : ["posts#index", 200]
          3.times do
            attribution.measure(name) do
              BloatProbe.churn(count: count, window: count, min_size: 8192, max_size: 8192, seed: i)
            end
          end
        end
      end
      4.times { ready.pop }
      before = marks.call
      4.times { go << true }
      threads.each(&:join)
      puts JSON.dump(entries: attribution.entries.map(&:to_h), marks_rose: marks.call - before)
    RUBY
    heavy, *light = result[:entries]
    assert_equal "export#run", heavy[:name]
    assert_equal 3, heavy[:calls]
    assert_operator heavy[:raised_bytes], :>=, 5_000 * 8192, "the first export raised its arena by its window"
    assert_operator heavy[:raised_bytes], :>=, 0.8 * result[:entries].sum { _1[:raised_bytes] }
    assert_equal ["posts#index"], light.map { _1[:name] }
    assert_equal 9, light.first[:calls]
    attributed = result[:entries].sum { _1[:raised_bytes] }
    assert_in_delta result[:marks_rose], attributed, 0.1 * result[:marks_rose],
                    "attributed #{attributed} against malloc_info's #{result[:marks_rose]}"
  end

  # Two threads on one arena (MALLOC_ARENA_MAX=2): a heavy call, and light calls that keep
  # starting and ending beside it, each of which sees the arena rise while it runs. The rise
  # is the heavy call's: its thread touched the new pages.
  def test_calls_that_overlap_on_one_arena_share_its_rise_by_the_pages_each_touched
    result = run_child(<<~RUBY, { "MALLOC_ARENA_MAX" => "2" }, timeout: 120)
      attribution = BloatProbe::Attribution.new
      marks = -> { BloatProbe.arena_stats.arenas.sum(&:system_max) }
      arenas = Queue.new
      roles = Array.new(4) { Queue.new }
      heavy_done = false
      threads = Array.new(4) do |i|
        Thread.new do
          BloatProbe.churn(count: 10, max_size: 4096) # this thread's arena, before the count starts
          # The arena list is checked again at most once a second: a new arena may wait.
          arena = nil
          30.times { (arena = BloatProbe.thread_arena.id) ? break : sleep(0.1) }
          arenas << [i, arena]
          case roles[i].pop
          when :heavy
            attribution.measure("export#run") do
              BloatProbe.churn(count: 5_000, window: 5_000, min_size: 8192, max_size: 8192, seed: i)
            end
            heavy_done = true
          when :light
            until heavy_done
              attribution.measure("posts#index") { Array.new(20) { "x" * 100 } }
              sleep 0.001
            end
          end
        end
      end
      found = Array.new(4) { arenas.pop }
      pair = found.select(&:last).group_by(&:last).values.find { _1.size >= 2 } or
        raise "no two threads on one arena: \#{found}"
      before = marks.call
      roles.each_with_index { |role, i| role << { pair[0][0] => :light, pair[1][0] => :heavy }.fetch(i, :idle) }
      threads.each(&:join)
      puts JSON.dump(entries: attribution.entries.map(&:to_h), marks_rose: marks.call - before)
    RUBY
    heavy, light = %w[export#run posts#index].map { |name| result[:entries].find { _1[:name] == name } }
    assert_operator light[:calls], :>=, 2, "light calls ran beside the heavy one"
    attributed = heavy[:raised_bytes] + light[:raised_bytes]
    assert_operator heavy[:raised_bytes], :>=, 0.8 * attributed, result[:entries].inspect
    assert_in_delta result[:marks_rose], attributed, 0.1 * result[:marks_rose],
                    "attributed #{attributed} against malloc_info's #{result[:marks_rose]}"
  end

  def test_memory_stays_bounded_and_nothing_is_lost
    attribution = BloatProbe::Attribution.new(limit: 3)
    10.times { |i| attribution.measure("name #{i}\n\t#{"x" * 500}") { nil } }
    entries = attribution.entries
    assert_operator entries.size, :<=, 4
    assert_includes entries.map(&:name), BloatProbe::Attribution::OTHER
    assert_equal 10, entries.sum(&:calls)
    assert(entries.all? { |entry| entry.name.length <= BloatProbe::Attribution::NAME_LENGTH })
    refute(entries.any? { |entry| entry.name.include?("\n") })
  end

  def test_a_call_that_raises_is_recorded_and_the_error_goes_on
    attribution = BloatProbe::Attribution.new
    assert_raises(ZeroDivisionError) { attribution.measure("broken#action") { 1 / 0 } }
    assert_equal [["broken#action", 1]], attribution.entries.map { [_1.name, _1.calls] }
  end

  def test_the_middleware_names_a_request_by_its_route
    name = ->(env) { BloatProbe::Attribution::Middleware.name_of(env) }
    rails = { "action_dispatch.request.path_parameters" => { controller: "posts", action: "index" } }
    assert_equal "posts#index", name.call(rails)
    assert_equal "GET /posts/:id", name.call("sinatra.route" => "GET /posts/:id")
    assert_equal "GET /assets", name.call("REQUEST_METHOD" => "GET", "PATH_INFO" => "/assets/app-123.css")
    assert_equal "GET /", name.call("REQUEST_METHOD" => "GET", "PATH_INFO" => "")
  end

  # #25: under a preloaded jemalloc (Rails 7.2+'s Dockerfile) a call is charged what it left
  # allocated, from its thread's own counters: 32 MiB kept by one call, none by calls that
  # free what they take; jemalloc's own count of what the process holds agrees.
  def test_under_jemalloc_a_call_is_charged_what_it_left_allocated
    path = library_path("libjemalloc.so.2")
    skip "libjemalloc2 is not installed (bin/setup installs it)" unless path

    result = run_child(<<~RUBY, { "LD_PRELOAD" => path })
      attribution = BloatProbe::Attribution.new
      blocks = { count: 2048, min_size: 16 << 10, max_size: 16 << 10 }
      kept = nil
      before = BloatProbe.jemalloc_stats.allocated
      Thread.new do
        attribution.measure("keeps") { kept = BloatProbe.churn(**blocks, retain: 1.0) }
        3.times { attribution.measure("frees") { BloatProbe.churn(**blocks, retain: 0.0) } }
      end.join
      grown = BloatProbe.jemalloc_stats.allocated - before
      puts JSON.dump(entries: attribution.entries.map(&:to_h), kept: kept.retained_bytes, grown: grown)
    RUBY
    keeps, frees = %w[keeps frees].map { |name| result[:entries].find { |entry| entry[:name] == name } }
    kept = result[:kept]
    assert_in_delta kept, keeps[:raised_bytes], 0.05 * kept, result[:entries].inspect
    assert_operator frees[:raised_bytes], :<, 0.05 * kept, result[:entries].inspect
    assert_equal 3, frees[:calls]
    assert_in_delta result[:grown], keeps[:raised_bytes] + frees[:raised_bytes], 0.1 * result[:grown]
  end
end
