# frozen_string_literal: true

# bin/rake bench:report[FILE.json]: a run's charts and its HTML report drawn again from its
# JSON, beside it (for a published run under docs/, or after the charts changed).
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require_relative "allocator_bench/outputs"

abort "usage: bin/rake bench:report[bench/results/bench-….json]" if ARGV.empty?
ARGV.each do |path|
  abort "bench:report: no such file #{path}" unless File.file?(path)
  files = AllocatorBench::Outputs.redraw(path)
  puts "#{path}:", *files.except(:json).map { |kind, file| format("  %-8s %s", kind, file) }
end
