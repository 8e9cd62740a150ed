# frozen_string_literal: true

require "test_helper"

# The headline call as a newcomer makes it: `bin/rails console` in rails-app, then
# BloatProbe.arena_stats. Nothing before the prompt may say the extension is unbuilt.
class ConsoleTest < Minitest::Test
  APP_DIR = File.expand_path("../rails-app", __dir__)

  def test_the_console_shows_the_arenas_without_a_warning
    out, status = Open3.capture2e({ "RAILS_ENV" => "development" }, "timeout", "--kill-after=5", "120",
                                  "bin/rails", "console", chdir: APP_DIR, stdin_data: "BloatProbe.arena_stats\n")
    assert status.success?, out
    refute_match(/Ignoring bloat_probe|extensions are not built/, out)
    assert_match(/#<BloatProbe::ArenaStats glibc [\d.]+, rss=.*, \d+ arenas/, out)
    assert_match(/^\s+0\s+[\d.]+ \w+/, out, "one line per arena")
  end
end
