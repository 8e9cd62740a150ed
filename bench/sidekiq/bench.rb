# frozen_string_literal: true

# What `sidekiq -r` loads for `WORKLOAD=sidekiq bin/rake bench`: the jobs, and the probe
# the bench reads.
require_relative "jobs"

# Which job class raised the arenas (BloatProbe.attribution), as BloatProbe::Sidekiq.install
# records it in an app; and BLOAT_PROBE_TRIM_INTERVAL (and BLOAT_PROBE_TRIM_MIN), the
# bench's trim remedies, as the integrations read them. No reporter and no metrics port:
# the bench measures the allocator.
recorder = BloatProbe::Recorder.new
BloatProbe.probe = BloatProbe::Probe.new(recorder: recorder, trimmer: BloatProbe::Trimmer.from_env(recorder: recorder))
# BLOAT_PROBE_ATTRIBUTION=0 (the no-probe configuration) leaves the middleware out, as in rails-app.
Sidekiq.configure_server do |config|
  if BloatProbe::Setting.boolean("BLOAT_PROBE_ATTRIBUTION", default: true)
    config.server_middleware { |chain| chain.add(BloatProbe::Sidekiq::Middleware, BloatProbe.probe.attribution) }
  end
  config.on(:startup) { BloatProbe.probe.trimmer&.start }
end
