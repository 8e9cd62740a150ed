# frozen_string_literal: true

# What `sidekiq -r` loads in the soak: the bench's jobs, and the probe as an app installs
# it (BloatProbe::Sidekiq.install): the reporter, attribution and a metrics port.
require_relative "../sidekiq/jobs"
require "bloat_probe/sidekiq"

BloatProbe::Sidekiq.install(
  port: BloatProbe::Setting.integer("BLOAT_PROBE_METRICS_PORT", range: BloatProbe::MetricsServer::PORTS, default: nil),
  interval: BloatProbe::Setting.seconds("BLOAT_PROBE_REPORT_INTERVAL", range: BloatProbe::Reporter::INTERVALS,
                                                                       default: BloatProbe::Reporter::DEFAULT_INTERVAL),
  diagnosis_interval: 1
)
