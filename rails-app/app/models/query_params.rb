# frozen_string_literal: true

# A request's query parameters, parsed by BloatProbe::Setting like every other setting: a
# bad one raises BloatProbe::SettingError, which ApplicationController answers with 422
# and the message naming it.
class QueryParams
  def initialize(params)
    @params = params
  end

  def integer(name, default:, range:)
    BloatProbe::Setting.integer(name.to_s, range: range, default: default, env: @params)
  end

  def fraction(name, default:)
    BloatProbe::Setting.number(name.to_s, range: 0.0..1.0, default: default, env: @params)
  end

  def ordered_sizes(min_name, max_name, default:, range:)
    min = integer(min_name, default: default.min, range: range)
    max = integer(max_name, default: default.max, range: range)
    raise BloatProbe::SettingError, "#{max_name} (#{max}) must be at least #{min_name} (#{min})" if max < min

    min..max
  end
end
