# frozen_string_literal: true

Rails.application.routes.draw do
  root "posts#index"
  resources :posts, only: %i[index show]

  # Routes that exist only when enabled, so that nothing allocates on demand or shows
  # the process's memory by accident in production. Disabled, they answer 404.
  if Rails.configuration.x.bloat_probe.dashboard
    get "bloat", to: "bloat#show", as: :bloat
    get "bloat/stats", to: "bloat#stats", as: :bloat_stats, defaults: { format: :json }
  end

  # Prometheus's text format, behind the dashboard's guard (LoopbackOnly).
  if Rails.configuration.x.bloat_probe.metrics
    mount LoopbackOnly.new(BloatProbe::Metrics.new), at: "bloat/metrics", as: :bloat_metrics
  end

  if Rails.configuration.x.bloat_probe.workload
    get "workload/strings", to: "workloads#strings", as: :workload_strings
    get "workload/churn", to: "workloads#churn", as: :workload_churn
    get "workload/keep", to: "workloads#keep", as: :workload_keep
  end
end
