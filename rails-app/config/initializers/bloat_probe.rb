# frozen_string_literal: true

# The workload routes' process budget governs what their churn may hold: the gem's own
# process-wide guard (BloatProbe.retain_limit, 2 GiB by default) must not refuse first
# when the budget is raised, as rake bench raises it.
BloatProbe.retain_limit = [BloatProbe.retain_limit, Rails.configuration.x.bloat_probe.workload_budget].max
