# frozen_string_literal: true

require "test_helper"

class SettingTest < Minitest::Test
  Setting = BloatProbe::Setting

  def test_booleans_are_on_or_off_and_nothing_else
    %w[1 true TRUE t yes y on On].each do |word|
      assert Setting.boolean("X", default: false, env: { "X" => word }), word
    end
    %w[0 false FALSE f no n off Off].each do |word|
      refute Setting.boolean("X", default: true, env: { "X" => word }), word
    end
    [nil, "", "  "].each { |word| assert_equal :unset, Setting.boolean("X", default: :unset, env: { "X" => word }) }
    error = assert_raises(BloatProbe::SettingError) do
      Setting.boolean("BLOAT_PROBE_X", default: false, env: { "BLOAT_PROBE_X" => "2" })
    end
    assert_match(/\ABLOAT_PROBE_X must be one of .* got "2"\z/, error.message)
    assert_kind_of ArgumentError, error
  end

  def test_numbers_are_whole_values_in_range
    assert_equal 25, Setting.integer("N", range: 1..64, default: 3, env: { "N" => " 25 " })
    assert_equal 3, Setting.integer("N", range: 1..64, default: 3, env: {})
    ["abc", "1abc", "0", "65", "1.5", "0x10"].each do |raw|
      error = assert_raises(BloatProbe::SettingError) do
        Setting.integer("N", range: 1..64, default: 3, env: { "N" => raw })
      end
      assert_equal "N must be a whole number in 1..64, got #{raw.inspect}", error.message
    end
    assert_in_delta 0.5, Setting.seconds("S", range: 0.01..10.0, default: nil, env: { "S" => "0.5" })
    %w[abc 1abc -1 1e-300 1e30 NaN].each do |raw|
      error = assert_raises(BloatProbe::SettingError) do
        Setting.seconds("S", range: 0.01..10.0, default: nil, env: { "S" => raw })
      end
      assert_equal "S must be a number of seconds in 0.01..10.0, got #{raw.inspect}", error.message
    end
  end

  def test_messages_stay_short_whatever_the_bad_value
    huge = Array.new(5_000_000, 1)
    error = assert_raises(TypeError) { BloatProbe.churn(count: huge) }
    assert_operator error.message.size, :<, 200
    assert_match(/count must be an Integer, got an Array of 5000000 elements \(Array\)/, error.message)
    error = assert_raises(RangeError) { BloatProbe.churn(count: 10**5000) }
    assert_operator error.message.size, :<, 200
    error = assert_raises(TypeError) { BloatProbe::Trimmer.new(interval: "x" * 10_000_000) }
    assert_match(/got a String of 10000000 bytes/, error.message)
  end

  def test_the_trimmer_interval_is_checked_against_its_range
    [0, -1, 1e-300, 10**30, Float::INFINITY, Float::NAN].each do |interval|
      error = assert_raises(RangeError, interval.inspect) { BloatProbe::Trimmer.start(interval: interval) }
      assert_match(/\Ainterval must be in 0\.01\.\.86400\.0 seconds, got /, error.message)
    end
  end

  # A Puma worker forked after preload_app! has none of the parent's threads: start runs
  # the Trimmer again there, and it trims.
  def test_a_forked_child_restarts_the_trimmer
    trimmer = BloatProbe::Trimmer.start(interval: 0.01)
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      was_alive = trimmer.instance_variable_get(:@thread).alive?
      trimmer.start
      before = trimmer.trims
      sleep 0.3
      writer.write(JSON.generate([was_alive, trimmer.trims - before]))
      exit!(0)
    end
    writer.close
    was_alive, trims = JSON.parse(reader.read)
    Process.wait(pid)
    refute was_alive, "the parent's thread is gone in the child"
    assert_operator trims, :>, 5, "the child trims on its own"
  ensure
    trimmer&.stop
  end
end
