# frozen_string_literal: true

module BloatProbe
  # The one writer of the lines the probe logs: logfmt, "bloat_probe[ topic] key=value …",
  # so that a person can read them and a log pipeline can parse them. A value that holds a
  # space, a quote, an equals sign or nothing is quoted; a missing one is "-"; sizes are in
  # MiB with one decimal (LogLine.mib).
  module LogLine
    PREFIX = "bloat_probe"
    # An error's message is cut here: a log line stays one line of reasonable length.
    MESSAGE_CHARS = 200

    module_function

    def format(topic = nil, **fields)
      pairs = fields.map { |key, value| "#{key}=#{value_text(value)}" }
      [PREFIX, topic, *pairs].compact.join(" ")
    end

    # A reading that failed, named by its class and message.
    def error(topic, exception, **fields)
      format(topic, **fields, error: exception.class.name, message: exception.message[0, MESSAGE_CHARS])
    end

    def mib(bytes)
      bytes && Kernel.format("%.1f", bytes / 1_048_576.0)
    end

    def value_text(value)
      return "-" if value.nil?

      text = value.to_s
      text.empty? || text.match?(/[\s"=\\]/) ? text.inspect : text
    end
  end
end
