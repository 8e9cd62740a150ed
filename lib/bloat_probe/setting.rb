# frozen_string_literal: true

module BloatProbe
  # A setting from the environment is malformed or out of range.
  class SettingError < ArgumentError; end

  # A bad value as a message shows it, short whatever its size (a 50 MB Array would make a
  # 50 MB message): collections are described, never inspected; anything else is cut.
  def self.excerpt(value, limit: 60)
    case value
    when Array then "an Array of #{value.size} elements"
    when Hash then "a Hash of #{value.size} pairs"
    when String then value.size > limit ? "a String of #{value.bytesize} bytes" : value.inspect
    else
      text = value.inspect
      text.size > limit ? "#{text[0, limit]}…" : text
    end
  end

  # A setting given in code: a `kind` in `range`, else TypeError or RangeError naming the
  # setting, the value and what is allowed. Returns the value.
  def self.check_number(name, value, range, kind = Numeric, unit: "")
    unless value.is_a?(kind)
      raise TypeError, "#{name} must be #{kind == Integer ? "a whole number" : "a number"} in #{range}#{unit}, " \
                       "got #{excerpt(value)} (#{value.class})"
    end
    raise RangeError, "#{name} must be in #{range}#{unit}, got #{excerpt(value)}" unless range.cover?(value)

    value
  end

  # The one parser of settings given as text: environment variables, a request's query
  # parameters, the bench's settings. Strict: a value that is not clearly valid raises
  # SettingError with its name, its value and what is allowed, rather than becoming a
  # default, a 0 or the opposite of what was meant. Unset or empty means the default.
  # `env` is anything with #[] (ENV, a Hash, a Rails request's params).
  module Setting
    TRUE_WORDS = %w[1 true t yes y on].freeze
    FALSE_WORDS = %w[0 false f no n off].freeze

    module_function

    def boolean(name, default:, env: ENV)
      raw = present(env, name) or return default
      word = raw.to_s.downcase
      return true if TRUE_WORDS.include?(word)
      return false if FALSE_WORDS.include?(word)

      raise SettingError, "#{name} must be one of #{TRUE_WORDS.join(", ")} (on) or #{FALSE_WORDS.join(", ")} (off), " \
                          "got #{BloatProbe.excerpt(env[name])}"
    end

    def integer(name, range:, default:, env: ENV)
      raw = present(env, name) or return default
      whole_number(name, raw, range: range)
    end

    # Text that must be a whole number in range: a setting's, or a part of one (MIX's weights).
    def whole_number(name, raw, range:)
      value = Integer(raw.strip, 10, exception: false) if raw.is_a?(String)
      return value if value && range.cover?(value)

      raise SettingError, "#{name} must be a whole number in #{range}, got #{BloatProbe.excerpt(raw)}"
    end

    def number(name, range:, default:, env: ENV, unit: "")
      raw = present(env, name) or return default
      value = Float(raw, exception: false) if raw.is_a?(String)
      return value if value && range.cover?(value)

      raise SettingError, "#{name} must be a number#{unit} in #{range}, got #{BloatProbe.excerpt(env[name])}"
    end

    def seconds(name, range:, default:, env: ENV)
      number(name, range: range, default: default, env: env, unit: " of seconds")
    end

    UNITS = { "K" => 1 << 10, "M" => 1 << 20, "G" => 1 << 30, "T" => 1 << 40 }.freeze

    # Bytes with a binary unit: "64M", "1.5G", "512MiB"; a bare number is refused, since
    # nobody means 64 bytes.
    def bytes(name, range:, default:, env: ENV)
      raw = present(env, name) or return default
      parsed = parse_bytes(raw)
      return parsed if parsed && range.cover?(parsed)

      raise SettingError, "#{name} must be bytes with a unit (K, M, G or T: 64M, 1.5G) in #{range}, " \
                          "got #{BloatProbe.excerpt(env[name])}"
    end

    # "1.5G" as bytes, or nil.
    def parse_bytes(text)
      match = text.to_s.strip.match(/\A(\d+(?:\.\d+)?)\s*([KMGT])i?B?\z/i) or return
      (Float(match[1]) * UNITS.fetch(match[2].upcase)).round
    end

    # One of `choices` (Strings); unset is the default.
    def choice(name, choices, default:, env: ENV)
      raw = present(env, name) or return default
      return raw if choices.include?(raw)

      raise SettingError,
            "#{name} must be one of #{choices.join(", ")} (or unset), got #{BloatProbe.excerpt(env[name])}"
    end

    # The setting's text, stripped; nil when unset or blank. Anything but text (a query's
    # `count[]=5`) comes back as it is, for the parser to refuse.
    def present(env, name)
      raw = env[name]
      return raw unless raw.is_a?(String)

      raw = raw.strip
      raw unless raw.empty?
    end
    private_class_method :present
  end
end
