# frozen_string_literal: true

require "application_system_test_case"

class DashboardTest < ApplicationSystemTestCase
  test "the dashboard draws one bar per arena, with the figures" do
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
      # The chart draws the Reporter's samples (config/puma.rb): taken here as it would.
      2.times { BloatProbe.probe.recorder.sample }
      visit "/bloat?refresh=0"
      points = find("#memory-chart polyline.rss", visible: :all)[:points].split
      assert_operator points.size, :>=, 2
      page.save_screenshot(Rails.root.join("tmp/screenshots/dashboard.png").to_s)
    end
  end
end
