# frozen_string_literal: true

require "application_system_test_case"
require_relative "../../../bench/allocator_bench/outputs"

# The bench's HTML report as a person opens it: drawn from a published run (11
# configurations, 3 rounds) and looked at in headless Chromium.
class BenchReportTest < ApplicationSystemTestCase
  PUBLISHED = File.expand_path("../../../docs/bench-2026-11-30-sidekiq.json", __dir__)

  test "the report shows one row per configuration and both charts" do
    Dir.mktmpdir("bloat_probe-report") do |dir|
      copy = File.join(dir, File.basename(PUBLISHED))
      FileUtils.cp(PUBLISHED, copy)
      visit "file://#{AllocatorBench::Outputs.redraw(copy)[:html]}"
      assert_selector "h1", text: /\Arake bench, 2026-11-30: 11 configurations\z/
      assert_selector "#results tbody tr", count: 11
      assert_selector "#results tr[data-config='glibc'] td", text: "arena_fragmentation"
      assert_selector "#findings li", minimum: 2
      { "#timeline svg" => 900, "#tradeoff svg" => 900 }.each do |chart, width|
        drawn = evaluate_script("document.querySelector(#{chart.to_json}).getBoundingClientRect().width")
        assert_operator drawn, :>=, width, "#{chart} is drawn at its size"
      end
      assert_selector "#timeline svg polyline.median", count: 11
      assert_selector "#tradeoff svg text.label", count: 22
      assert_selector "#rerun", text: %r{\ACONFIGS=glibc,arena2,.* REPEAT=3 .*bin/rake bench:sidekiq\z}
      page.save_screenshot(Rails.root.join("tmp/screenshots/bench_report.png").to_s)
    end
  end
end
