# frozen_string_literal: true

module BloatProbe
  # Human formatting, used only where a person reads the figures (inspect, tables,
  # charts).
  module Format
    UNITS = %w[B KiB MiB GiB TiB].freeze

    module_function

    def bytes(count)
      return "-" if count.nil?

      scaled = count.to_f
      unit = 0
      while scaled.abs >= 1024 && unit < UNITS.size - 1
        scaled /= 1024
        unit += 1
      end
      return "#{count} B" if unit.zero?

      format("%.#{scaled.abs < 10 ? 1 : 0}f %s", scaled, UNITS[unit])
    end

    # Axis ticks at round values (1, 2 or 5 × 10^n) from 0 up to the first at or past
    # `max`, about `count` of them: what a chart's reader takes in at a glance.
    def ticks(max, count: 5)
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
end
