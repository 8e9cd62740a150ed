# frozen_string_literal: true

# BLOAT_PROBE_TRIM_INTERVAL=1 trims glibc's arenas every second (`rake bench`'s trim-1s);
# with BLOAT_PROBE_TRIM_MIN=64M, only when a trim would return that much (its `trim`).
# Only under glibc, where malloc_trim means something.
if (interval = Rails.configuration.x.bloat_probe.trim_interval) && BloatProbe.allocator.glibc?
  Rails.application.config.after_initialize do
    next if Rails.const_defined?(:Console)

    BloatProbe.probe.trimmer =
      BloatProbe::Trimmer.start(interval: interval, min_trimmable: Rails.configuration.x.bloat_probe.trim_min)
  end
end

# The workload routes' process budget governs what their churn may hold: the gem's own
# process-wide guard (BloatProbe.retain_limit, 2 GiB by default) must not refuse first
# when the budget is raised, as rake bench raises it.
BloatProbe.retain_limit = [BloatProbe.retain_limit, Rails.configuration.x.bloat_probe.workload_budget].max
