# frozen_string_literal: true

require_relative "boot"

require "rails"
# Only the frameworks this app uses: no assets, mail, jobs, storage or cable.
require "active_record/railtie"
require "action_controller/railtie"
require "action_view/railtie"
require "rails/test_unit/railtie"

Bundler.require(*Rails.groups)

module BloatyMcBloatface
  class Application < Rails::Application
    config.load_defaults 6.1

    # ab -k speaks HTTP/1.0 keep-alive, which needs a Content-Length on every response.
    config.middleware.insert_before 0, Rack::ContentLength

    # The database unreachable (PostgreSQL restarting under docker-compose) is a 503, not
    # a 500; the log names the error, and the next request reconnects.
    config.action_dispatch.rescue_responses["ActiveRecord::ConnectionNotEstablished"] = :service_unavailable

    # Switches of the lab; see README. Each is off unless its variable is set.
    config.x.bloat_probe.dashboard = ENV["BLOAT_PROBE_DASHBOARD"].present?
    config.x.bloat_probe.allow_remote = ENV["BLOAT_PROBE_ALLOW_REMOTE"].present?
    config.x.bloat_probe.workload = ENV["BLOAT_PROBE_WORKLOAD"].present?
    config.x.bloat_probe.trim_interval = ENV["BLOAT_PROBE_TRIM_INTERVAL"].presence&.to_f
  end
end
