# frozen_string_literal: true

require "active_support/core_ext/numeric/bytes"

Rails.application.configure do
  config.cache_classes = true
  config.eager_load = true
  config.consider_all_requests_local = false
  # A process-local cache, so /posts does not hit the database on every request.
  config.cache_store = :memory_store, { size: 64.megabytes }
  config.log_level = ENV.fetch("RAILS_LOG_LEVEL", "info").to_sym
  config.log_tags = [:request_id]
  if ENV["RAILS_LOG_TO_STDOUT"].present?
    config.logger = ActiveSupport::TaggedLogging.new(ActiveSupport::Logger.new($stdout))
  end
  config.active_support.deprecation = :notify
  config.active_record.dump_schema_after_migration = false
  # The app keeps no sessions or signed data worth keeping across restarts.
  config.secret_key_base = ENV.fetch("SECRET_KEY_BASE") { SecureRandom.hex(64) }
end
