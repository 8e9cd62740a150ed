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
          samples = sample_names(family).flat_map { |sample_name| by_name[sample_name] || [] }
          next if samples.empty?

          lines = ["# HELP #{name} #{family.help}", "# TYPE #{name} #{family.type}"]
          # Integers, and Ruby's shortest exact Float form, are numbers as Prometheus reads them.
          samples.each { |sample_name, labels, value| lines << "#{sample_name}#{label_text(labels)} #{value}" }
          lines.join("\n")
        end
        "#{families.join("\n")}\n"
      end

      # A histogram's samples are named with suffixes; every other family's by its name.
      def sample_names(family)
        return [family.name] unless family.type == "histogram"

        %w[_bucket _sum _count].map { |suffix| "#{family.name}#{suffix}" }
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
