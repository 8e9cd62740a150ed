# frozen_string_literal: true

require "test_helper"

class BloatTest < ActionDispatch::IntegrationTest
  test "the dashboard routes do not exist unless enabled" do
    with_switch(:dashboard, value: false) do
      with_error_pages do
        get "/bloat/stats.json"
        assert_response :not_found
        get "/bloat"
        assert_response :not_found
      end
    end
  end

  test "stats.json serves real readings of this process" do
    with_switch(:dashboard) do
      # glibc's own totals, read independently just before and just after: the request's own
      # allocations (a diagnosis, the JSON) and other threads' move them meanwhile, so the
      # document's figures must fall between the two, give or take 1 MiB.
      before = BloatProbe.mallinfo
      get "/bloat/stats.json"
      after = BloatProbe.mallinfo
      assert_response :success
      stats = response.parsed_body
      assert_equal "glibc", stats.dig("arena_stats", "allocator")
      arenas = stats.dig("arena_stats", "glibc")
      assert_operator arenas["arena_count"], :>=, 1
      # glibc's other report, malloc_stats, counts the arenas on its own.
      assert_equal BloatProbe.malloc_stats.arenas.size, arenas["arena_count"]
      { "system" => :arena, "free" => :fordblks, "in_use" => :uordblks }.each do |field, mallinfo_field|
        low, high = [before, after].map(&mallinfo_field).minmax
        assert_operator arenas[field], :>=, low - (1 << 20), "#{field} against mallinfo before #{low}"
        assert_operator arenas[field], :<=, high + (1 << 20), "#{field} against mallinfo after #{high}"
      end
      yjit = defined?(RubyVM::YJIT) ? RubyVM::YJIT.enabled? : false
      assert_equal({ "pid" => Process.pid, "worker" => nil, "ruby" => RUBY_VERSION, "yjit" => yjit }, stats["process"])
      assert_operator stats.dig("memory", "rss"), :>, 0
      assert_kind_of Integer, stats.dig("memory", "heap_mappings")
      assert_operator stats.dig("gc", "count"), :>, 0
    end
  end

  test "only loopback clients are answered unless remote access is allowed" do
    with_switch(:dashboard) do
      get "/bloat/stats.json", env: { "REMOTE_ADDR" => "192.0.2.7" }
      assert_response :forbidden
      get "/bloat/stats.json", env: { "REMOTE_ADDR" => "127.0.0.1", "HTTP_X_FORWARDED_FOR" => "192.0.2.7" }
      assert_response :success
      with_switch(:allow_remote) do
        get "/bloat/stats.json", env: { "REMOTE_ADDR" => "192.0.2.7" }
        assert_response :success
      end
    end
  end

  test "the dashboard page shows one bar per arena" do
    with_switch(:dashboard) do
      get "/bloat"
      assert_response :success
      count = Integer(css_select("#arena-count").first.text)
      assert_select ".arena", count
      assert_select "meta[http-equiv=refresh][content='2']"
    end
  end

  test "the page's reload interval is chosen by ?refresh, and 0 holds it still" do
    with_switch(:dashboard) do
      get "/bloat", params: { refresh: 10 }
      assert_select "meta[http-equiv=refresh][content='10']"
      get "/bloat", params: { refresh: 0 }
      assert_response :success
      assert_select "meta[http-equiv=refresh]", 0
      get "/bloat", params: { refresh: "soon" }
      assert_response :unprocessable_entity
      assert_match(/refresh must be a whole number in 0\.\.3600, got "soon"/, response.parsed_body["error"])
    end
  end

  test "the metrics route exists only when enabled" do
    with_switch(:metrics, value: false) do
      with_error_pages do
        get "/bloat/metrics"
        assert_response :not_found
      end
    end
  end

  test "the metrics are Prometheus's text format, for loopback clients only" do
    with_switch(:metrics) do
      get "/bloat/metrics"
      assert_response :success
      assert_equal "text/plain; version=0.0.4; charset=utf-8",
                   response.headers.to_h.transform_keys(&:downcase)["content-type"]
      assert_match(/^process_resident_memory_bytes \d+$/, response.body)
      assert_match(/^bloat_probe_verdict\{verdict="healthy"\} [01]$/, response.body)
      get "/bloat/metrics", env: { "REMOTE_ADDR" => "192.0.2.7", "HTTP_X_FORWARDED_FOR" => "127.0.0.1" }
      assert_response :forbidden
      with_switch(:allow_remote) do
        get "/bloat/metrics", env: { "REMOTE_ADDR" => "192.0.2.7" }
        assert_response :success
      end
    end
  end

  test "the dashboard shows the verdict and charts the recorder's history" do
    with_switch(:dashboard) do
      recorder = BloatProbe.probe.recorder
      2.times { recorder.take } # what the Reporter does each interval under Puma
      recorded = recorder.history.size
      get "/bloat", params: { refresh: 0 }
      assert_response :success
      assert_equal recorded, recorder.history.size, "viewing the page records nothing"
      assert_select "#verdict", recorder.diagnosis.verdict.to_s.humanize
      assert_select "#explanation", /./
      assert_select "#memory-chart polyline.rss[points]"
      points = css_select("#memory-chart polyline.rss").first["points"].split
      assert_equal [recorded, recorder.history_size].min, points.size, "one point per recorded sample"
    end
  end

  test "the dashboard shows which endpoint raised the arenas" do
    seed_posts
    with_switch(:dashboard) do
      3.times { get "/posts" }
      get "/bloat", params: { refresh: 0 }
      assert_response :success
      assert_select "#attribution tr[data-endpoint='posts#index'] td", text: "posts#index"
      calls = css_select("#attribution tr[data-endpoint='posts#index'] td")[1].text
      assert_operator Integer(calls), :>=, 3
      # Two tables, each under its own heading: the endpoints, then the allocator's figures.
      assert_select "h2 + p.note + table#attribution"
      assert_select "h2 + table#totals"
    end
  end

  test "the dashboard lists the guard's decisions" do
    saved = BloatProbe.probe
    guard = BloatProbe::Guard.new(budget: "1M", mode: "dry-run", strikes: 1, recorder: saved.recorder,
                                  restart: ->(_) { true }, log: ->(_) {})
    guard.tick
    BloatProbe.probe = BloatProbe::Probe.new(recorder: saved.recorder, attribution: saved.attribution, guard: guard)
    with_switch(:dashboard) do
      get "/bloat", params: { refresh: 0 }
      assert_select "#guard li", /restart \(\w+\),\s+.*\s+of 1\.0 MiB \(dry run\)/m
    end
  ensure
    BloatProbe.probe = saved
  end
end
