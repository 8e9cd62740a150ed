# frozen_string_literal: true

ENV["RAILS_ENV"] ||= "test"
require_relative "../config/environment"
require "rails/test_help"

class ActiveSupport::TestCase
  # The seed itself, small: what /posts renders in production, made the same way.
  def seed_posts(count = 60)
    ENV["POSTS"] = count.to_s
    silence_stream($stdout) { load Rails.root.join("db/seeds.rb") }
  ensure
    ENV.delete("POSTS")
  end

  def silence_stream(stream)
    saved = stream.dup
    stream.reopen(File::NULL)
    yield
  ensure
    stream.reopen(saved)
  end

  # Shows error pages as production does (the test environment raises instead), so that
  # a missing route is seen as the 404 a client gets.
  def with_error_pages
    config = Rails.application.env_config
    saved = config["action_dispatch.show_exceptions"]
    config["action_dispatch.show_exceptions"] = true
    yield
  ensure
    config["action_dispatch.show_exceptions"] = saved
  end

  # How far glibc's in-use bytes (mallinfo2 uordblks) moved during the block. The garbage
  # earlier tests left is collected first and the GC is held off meanwhile, so that a
  # sweep in the middle cannot hide what the block kept.
  def malloc_growth
    GC.start
    GC.disable
    before = BloatProbe.mallinfo.uordblks
    yield
    BloatProbe.mallinfo.uordblks - before
  ensure
    GC.enable
  end

  # Turns one of the lab's switches on for the block, with the routes drawn to match.
  def with_switch(name, value: true, &block)
    with_setting(name, value) do
      Rails.application.reload_routes!
      block.call
    end
  ensure
    Rails.application.reload_routes!
  end

  def with_setting(name, value)
    settings = Rails.configuration.x.bloat_probe
    saved = settings.public_send(name)
    settings.public_send("#{name}=", value)
    yield
  ensure
    settings.public_send("#{name}=", saved)
  end
end
