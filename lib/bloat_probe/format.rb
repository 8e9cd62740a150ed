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
  end
end
