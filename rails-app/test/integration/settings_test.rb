# frozen_string_literal: true

require "test_helper"
require "open3"

# The switches and settings are read once, at boot: each case boots the app in a child.
class SettingsTest < ActiveSupport::TestCase
  SWITCHES = "print Rails.configuration.x.bloat_probe.to_h.slice(:dashboard, :allow_remote, :workload).values.inspect"

  def boot(env, code = SWITCHES)
    Open3.capture2e({ "RAILS_ENV" => "production" }.merge(env), "timeout", "--kill-after=5", "60",
                    "bin/rails", "runner", code, chdir: Rails.root.to_s)
  end

  test "off means off: 0, false, no and off turn the switches off" do
    %w[0 false no OFF].each do |word|
      out, status = boot("BLOAT_PROBE_DASHBOARD" => word, "BLOAT_PROBE_ALLOW_REMOTE" => word,
                         "BLOAT_PROBE_WORKLOAD" => word)
      assert status.success?, out
      assert_equal "[false, false, false]", out.lines.last, word
    end
    out, status = boot("BLOAT_PROBE_DASHBOARD" => "1", "BLOAT_PROBE_ALLOW_REMOTE" => "yes",
                       "BLOAT_PROBE_WORKLOAD" => "true")
    assert status.success?, out
    assert_equal "[true, true, true]", out.lines.last
  end

  test "a value neither on nor off, or out of range, stops the boot naming the variable and the value" do
    {
      { "BLOAT_PROBE_ALLOW_REMOTE" => "maybe" } => /BLOAT_PROBE_ALLOW_REMOTE must be one of 1, .* got "maybe"/
    }.each do |env, message|
      out, status = boot(env, "print 1")
      refute status.success?, env.inspect
      assert_match message, out
    end
  end

  test "a raised workload budget raises the gem's retain limit with it, never lowers it" do
    out, status = boot({ "BLOAT_PROBE_WORKLOAD_BUDGET" => (4 << 30).to_s }, "print BloatProbe.retain_limit")
    assert status.success?, out
    assert_equal (4 << 30).to_s, out.lines.last
    out, status = boot({ "BLOAT_PROBE_WORKLOAD_BUDGET" => (1 << 30).to_s }, "print BloatProbe.retain_limit")
    assert status.success?, out
    assert_equal (2 << 30).to_s, out.lines.last
  end

  test "Puma's settings are strict too: RAILS_MAX_THREADS=abc stops it before it listens" do
    out, status = Open3.capture2e({ "RAILS_MAX_THREADS" => "abc", "PORT" => "1", "BINDING" => "127.0.0.1" },
                                  "timeout", "--kill-after=5", "60", "bundle", "exec", "puma", "-C", "config/puma.rb",
                                  chdir: Rails.root.to_s)
    refute status.success?
    assert_match(/RAILS_MAX_THREADS must be a whole number in 1\.\.1024, got "abc"/, out)
  end

  test "the bloat_probe plugin's settings are checked when Puma starts" do
    {
      { "BLOAT_PROBE_REPORT_INTERVAL" => "0" } =>
        /BLOAT_PROBE_REPORT_INTERVAL must be a number of seconds in 0\.1\.\.86400\.0, got "0"/,
      { "BLOAT_PROBE_REPORT_INTERVAL" => "-5" } => /BLOAT_PROBE_REPORT_INTERVAL .* got "-5"/,
      { "BLOAT_PROBE_REPORT_INTERVAL" => "every minute" } => /BLOAT_PROBE_REPORT_INTERVAL .* got "every minute"/,
      { "BLOAT_PROBE_TRIM_INTERVAL" => "1abc" } =>
        /BLOAT_PROBE_TRIM_INTERVAL must be a number of seconds in 0\.01\.\.86400\.0, got "1abc"/,
      { "BLOAT_PROBE_TRIM_INTERVAL" => "1e-300" } => /BLOAT_PROBE_TRIM_INTERVAL .* got "1e-300"/,
      { "BLOAT_PROBE_TRIM_MIN" => "12 apples" } => /BLOAT_PROBE_TRIM_MIN .* got "12 apples"/
    }.each do |env, message|
      out, status = Open3.capture2e({ "PORT" => "1", "BINDING" => "127.0.0.1" }.merge(env),
                                    "timeout", "--kill-after=5", "60", "bundle", "exec", "puma", "-C", "config/puma.rb",
                                    chdir: Rails.root.to_s)
      refute status.success?, env.inspect
      assert_match message, out
    end
  end
end
