# frozen_string_literal: true

ENV["BUNDLE_GEMFILE"] ||= File.expand_path("../Gemfile", __dir__)
# `rails server` would listen on 0.0.0.0 in production; this lab's routes allocate memory
# on demand, so it listens on loopback unless BINDING says otherwise, as config/puma.rb.
ENV["BINDING"] ||= "127.0.0.1"

require "bundler/setup"
