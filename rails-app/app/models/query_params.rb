# frozen_string_literal: true

# Checks a request's query parameters against documented ranges; a bad one raises
# Invalid, which ApplicationController answers with 422 and a message naming it.
class QueryParams
  Invalid = Class.new(StandardError)

  def initialize(params)
    @params = params
  end

  def integer(name, default:, range:)
    raw = @params[name]
    return default if raw.blank?

    value = raw.is_a?(String) ? Integer(raw, 10, exception: false) : nil
    return value if value && range.cover?(value)

    raise Invalid, "#{name} must be an integer in #{range}, got #{raw.inspect}"
  end

  def fraction(name, default:)
    raw = @params[name]
    return default if raw.blank?

    value = raw.is_a?(String) ? Float(raw, exception: false) : nil
    return value if value && (0.0..1.0).cover?(value)

    raise Invalid, "#{name} must be a number in 0.0..1.0, got #{raw.inspect}"
  end

  def ordered_sizes(min_name, max_name, default:, range:)
    min = integer(min_name, default: default.min, range: range)
    max = integer(max_name, default: default.max, range: range)
    raise Invalid, "#{max_name} (#{max}) must be at least #{min_name} (#{min})" if max < min

    min..max
  end
end
