# frozen_string_literal: true

# Round numbers for a chart's axis: the dashboard's memory chart and the bench's charts.
module Ticks
  module_function

  # Axis ticks at round values (1, 2 or 5 × 10^n) from 0 up to the first at or past
  # `max`, about `count` of them: what a chart's reader takes in at a glance.
  def up_to(max, count: 5)
    max = max.to_f
    return [0, 1] unless max.positive?

    raw = max / count
    magnitude = 10.0**Math.log10(raw).floor
    step = [1, 2, 5, 10].map { |factor| factor * magnitude }.find { |candidate| candidate >= raw }
    (0..(max / step).ceil).map do |i|
      value = (i * step).round(6) # 0.1 × 3 is 0.30000000000000004: a tick shows as meant
      value == value.to_i ? value.to_i : value
    end
  end
end
