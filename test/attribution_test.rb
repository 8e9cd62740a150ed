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
end
