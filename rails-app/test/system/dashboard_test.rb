# frozen_string_literal: true

require "application_system_test_case"

class DashboardTest < ApplicationSystemTestCase
  MiB = 1 << 20

  test "the dashboard draws one bar per arena, with the figures" do
    # Past its warm-up, so that the verdict is about the figures (this process's own probe
    # is in its first ten minutes, whose verdict is warming_up whatever they are).
    saved = BloatProbe.probe
    BloatProbe.probe = BloatProbe::Probe.new(recorder: BloatProbe::Recorder.new(warmup: 0))
    with_switch(:dashboard) do
      # Held still: a reload in the middle of the assertions would leave them stale elements.
      visit "/bloat?refresh=0"
      assert_selector "h1", text: "glibc arenas in this process"
      count = Integer(find("#arena-count").text)
      assert_operator count, :>=, 1
      assert_selector ".arena", count: count
      # An arena with almost nothing in use has a bar too thin to count as visible.
      assert_selector ".arena .bar .in-use", count: count, visible: :all
      assert_match(/\A\d+(\.\d)? (KiB|MiB|GiB)\z/, find("#rss").text)
      assert_match(/\Aglibc 2\.\d+\z/, find("#allocator").text)
      assert_selector ".arena .figures", text: /in use, .* free of/
      assert_selector "#verdict", text: /\A(Healthy|Live native|Ruby heap|Arena fragmentation|Allocator retained)\z/
      assert_selector "#explanation", text: /RSS|allocator/
    end
  ensure
    BloatProbe.probe = saved
  end

  # After a load that leaves glibc's arenas holding freed memory, the verdict and the
  # figures beside it come from one sample and say the same thing; the chart has its axes
  # and each of its three series is drawn.
  test "after a load the verdict agrees with the free memory shown beside it" do
    # A Recorder of this test's own: other tests in this process take samples too.
    saved = BloatProbe.probe
    kept = Array.new(8) do |seed|
      Thread.new { BloatProbe.churn(count: 20_000, window: 20_000, retain: 0.01, seed: seed) }
    end.map(&:value)
    with_switch(:dashboard) do
      recorder = BloatProbe::Recorder.new
      BloatProbe.probe = BloatProbe::Probe.new(recorder: recorder)
      3.times { recorder.take } # what the Reporter does each interval under Puma
      visit "/bloat?refresh=0"
      free = Integer(find("#free-resident")["data-bytes"])
      rss = Integer(find("#rss")["data-bytes"])
      assert_operator free, :>=, 64 * MiB, "the load left freed memory with the arenas"
      assert_operator free, :>=, rss / 4
      assert_includes ["Arena fragmentation", "Allocator retained"], find("#verdict").text,
                      "free #{free / MiB} MiB of RSS #{rss / MiB} MiB"
      assert_selector "#explanation", text: /free/
      %w[rss in-use free].each do |series|
        points = find("#memory-chart polyline.#{series}", visible: :all)[:points].split
        assert_equal 3, points.size, series
        stroke = evaluate_script("getComputedStyle(document.querySelector('#memory-chart polyline.#{series}')).stroke")
        refute_includes ["none", ""], stroke, "#{series} is drawn"
      end
      assert_selector "#memory-chart text.tick.y", minimum: 2
      assert_selector "#memory-chart text.tick.x", text: /\A\d\d:\d\d:\d\d\z/, minimum: 1
      assert_selector "#memory-chart text.unit", text: "MiB"
      page.save_screenshot(Rails.root.join("tmp/screenshots/dashboard.png").to_s)
    end
  ensure
    kept&.each(&:release)
    BloatProbe.probe = saved
  end
end
