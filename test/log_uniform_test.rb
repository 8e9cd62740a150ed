# frozen_string_literal: true

require "test_helper"
require_relative "../rails-app/lib/log_uniform"

# LogUniform, the Ruby workloads' size generator, against churn's own draw in
# Rust: the same distribution, measured from what each allocated.
class LogUniformTest < Minitest::Test
  SIZES = 24..32_768
  DRAWS = 200_000

  def test_ruby_and_churn_draw_the_same_distribution
    generator = LogUniform.new(SIZES, random: Random.new(7))
    ruby_sizes = Array.new(DRAWS) { generator.draw }
    native = BloatProbe.churn(count: DRAWS, min_size: SIZES.min, max_size: SIZES.max, window: 0, seed: 7)
    ruby_mean = ruby_sizes.sum.fdiv(DRAWS)
    native_mean = native.bytes.fdiv(native.allocations)
    # The reckoned mean is 4536 B; 200,000 draws put each sample's mean within about 1%.
    assert_in_delta generator.mean, ruby_mean, 0.02 * generator.mean
    assert_in_delta generator.mean, native_mean, 0.02 * generator.mean
    assert(ruby_sizes.all? { |size| SIZES.cover?(size) })
    # Half of the draws below the geometric middle (about 887 B), in log-uniform fashion.
    middle = Math.sqrt(SIZES.min * (SIZES.max + 1))
    assert_in_delta 0.5, ruby_sizes.count { |size| size < middle }.fdiv(DRAWS), 0.01
  end

  def test_bad_sizes_are_refused
    error = assert_raises(ArgumentError) { LogUniform.new(0..10) }
    assert_match(/sizes must be a Range of positive whole numbers, got 0\.\.10/, error.message)
    assert_raises(ArgumentError) { LogUniform.new([1, 2]) }
  end
end
