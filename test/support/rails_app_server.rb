# frozen_string_literal: true

require_relative "../../bench/allocator_bench/configuration"
require_relative "../../bench/allocator_bench/server"

# rails-app under Puma for a test, through the bench's own launcher (the same start,
# readiness check and stop as `rake bench`), its log in a scratch directory (@log), and
# stopped after the test.
module RailsAppServer
  # env: the settings this test runs with; command: :rails_server for the documented
  # `bundle exec rails server`, :puma for the bench's own (AllocatorBench::Server::COMMANDS).
  def start_rails_app(name, env: {}, threads: 4, command: :puma)
    config = AllocatorBench::Configuration.new(name: name, summary: name, env: env)
    start_configuration(config, threads: threads, command: command)
  end

  # A configuration of the bench's own (AllocatorBench::Configuration.select).
  def start_configuration(config, threads:, command: :puma)
    @log = scratch_log("bloat_probe-#{config.name}")
    server = AllocatorBench::Server.new(config, threads: threads, log_path: @log, command: command)
    (@rails_apps ||= []) << server
    server.start
  end

  def teardown
    @rails_apps&.each(&:stop)
    super
  end
end
