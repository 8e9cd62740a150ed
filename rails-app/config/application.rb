# frozen_string_literal: true

require_relative "boot"

require "rails"
# Only the frameworks this app uses: no assets, mail, jobs, storage or cable.
require "active_record/railtie"
require "action_controller/railtie"
require "action_view/railtie"
require "rails/test_unit/railtie"

Bundler.require(*Rails.groups)
require_relative "../lib/malformed_query_guard"
require_relative "../lib/log_uniform"
require_relative "../lib/stats_document"
require_relative "../lib/ticks"
require_relative "../lib/loopback_only"

module BloatyMcBloatface
  class Application < Rails::Application
    config.load_defaults 6.1

    # ab -k speaks HTTP/1.0 keep-alive, which needs a Content-Length on every response.
    config.middleware.insert_before 0, Rack::ContentLength
    config.middleware.insert_after Rack::ContentLength, MalformedQueryGuard
    # Which endpoint raised each arena's high-water mark (BloatProbe.attribution, /bloat);
    # BLOAT_PROBE_ATTRIBUTION=0 leaves it out (bin/rake bench:probe measures its cost so).
    if BloatProbe::Setting.boolean("BLOAT_PROBE_ATTRIBUTION", default: true)
      config.middleware.insert_after MalformedQueryGuard, BloatProbe::Attribution::Middleware
    end

    # The database unreachable (PostgreSQL restarting under docker-compose) is a 503, not
    # a 500; the log names the error, and the next request reconnects. Responses are looked
    # up by the exact class name, and Rails 7.1+ raises a subclass when the host is unknown.
    %w[ActiveRecord::ConnectionNotEstablished ActiveRecord::DatabaseConnectionError].each do |error|
      config.action_dispatch.rescue_responses[error] = :service_unavailable
    end

    # Switches of the lab; see README. Off unless their variable turns them on (the
    # dashboard is on in development); a value that is neither clearly on nor clearly off
    # stops the boot, naming the variable.
    setting = BloatProbe::Setting
    config.x.bloat_probe.dashboard = setting.boolean("BLOAT_PROBE_DASHBOARD", default: Rails.env.development?)
    config.x.bloat_probe.metrics = setting.boolean("BLOAT_PROBE_METRICS", default: Rails.env.development?)
    config.x.bloat_probe.allow_remote = setting.boolean("BLOAT_PROBE_ALLOW_REMOTE", default: false)
    config.x.bloat_probe.workload = setting.boolean("BLOAT_PROBE_WORKLOAD", default: false)
    # Bytes the workload routes may hold: per request, and all requests at once (see
    # WorkloadBudget); all at once defaults to the gem's own retain limit.
    config.x.bloat_probe.workload_request_budget =
      setting.integer("BLOAT_PROBE_WORKLOAD_REQUEST_BUDGET", range: (1 << 20)..(1 << 40), default: 512 << 20)
    config.x.bloat_probe.workload_budget =
      setting.integer("BLOAT_PROBE_WORKLOAD_BUDGET", range: (1 << 20)..(1 << 40), default: BloatProbe.retain_limit)
  end
end
