# frozen_string_literal: true

# BLOAT_PROBE_TRIM_INTERVAL=1 trims glibc's arenas every second: the `trim` remedy of
# `rake bench`. Only under glibc, where malloc_trim means something.
if (interval = Rails.configuration.x.bloat_probe.trim_interval) && BloatProbe.allocator.glibc?
  Rails.application.config.after_initialize do
    next if Rails.const_defined?(:Console)

    BloatProbe.probe.trimmer = BloatProbe::Trimmer.start(interval: interval)
  end
end

# The workload routes' process budget governs what their churn may hold: the gem's own
# process-wide guard (BloatProbe.retain_limit, 2 GiB by default) must not refuse first
# when the budget is raised, as rake bench raises it.
BloatProbe.retain_limit = [BloatProbe.retain_limit, Rails.configuration.x.bloat_probe.workload_budget].max
