# frozen_string_literal: true

# bin/rake soak: the whole probe on for DURATION seconds (default 3600) under mixed load,
# then the checks of Soak::Checks; the report (soak.html, soak.json) goes to OUT (default
# tmp/soak-DATE). Exits 1 when a check fails.
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "bloat_probe/setting"
require_relative "soak/runner"

# Progress lines as they come, to a terminal or a log.
$stdout.sync = true

setting = BloatProbe::Setting
duration = setting.integer("DURATION", range: 60..86_400, default: 3600)
out = File.expand_path(ENV.fetch("OUT") do
  "tmp/soak-#{Time.now.utc.strftime("%Y-%m-%d-%H%M")}"
end, File.expand_path("..", __dir__))
checks = Soak::Runner.new(duration: duration, out: out).run
checks.each { |check| puts format("%-4s %s  %s", check.ok ? "ok" : "FAIL", check.name, JSON.generate(check.detail)) }
puts "report: #{out}/soak.html"
exit(checks.all?(&:ok) ? 0 : 1)
