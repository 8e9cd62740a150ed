# frozen_string_literal: true

module BloatProbe
  class Metrics
    # Prometheus's text exposition format (version 0.0.4), from series of [name, labels,
    # value].
    module Exposition
      module_function

      CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

      # The exposition text of many processes' series: each family's HELP and TYPE once,
      # then all its samples together, as the format requires.
      def render(series)
        by_name = series.group_by(&:first)
        families = Families::ALL.filter_map do |family|
          name = family.name
          samples = by_name[name] or next
          lines = ["# HELP #{name} #{family.help}", "# TYPE #{name} #{family.type}"]
          # Integers, and Ruby's shortest exact Float form, are numbers as Prometheus reads them.
          samples.each { |_name, labels, value| lines << "#{name}#{label_text(labels)} #{value}" }
          lines.join("\n")
        end
        "#{families.join("\n")}\n"
      end

      def label_text(labels)
        return "" if labels.empty?

        pairs = labels.map do |key, value|
          "#{key}=\"#{value.to_s.gsub(/[\\"\n]/, "\\" => "\\\\", '"' => '\\"', "\n" => "\\n")}\""
        end
        "{#{pairs.join(",")}}"
      end
    end
  end
end
