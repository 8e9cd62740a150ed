# frozen_string_literal: true

require "application_system_test_case"

class DashboardTest < ApplicationSystemTestCase
  test "the dashboard draws one bar per arena, with the figures" do
    with_switch(:dashboard) do
      visit "/bloat"
      assert_selector "h1", text: "glibc arenas in this process"
      count = Integer(find("#arena-count").text)
      assert_operator count, :>=, 1
      assert_selector ".arena", count: count
      assert_selector ".arena .bar .in-use", count: count
      assert_match(/\A\d+(\.\d)? (KiB|MiB|GiB)\z/, find("#rss").text)
      assert_match(/\Aglibc 2\.\d+\z/, find("#allocator").text)
      assert_selector ".arena .figures", text: /in use, .* free of/
      page.save_screenshot(Rails.root.join("tmp/screenshots/dashboard.png").to_s)
    end
  end
end
