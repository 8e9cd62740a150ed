# frozen_string_literal: true

require "minitest/autorun"
require "etc"
require "json"
require "timeout"
require "bloat_probe"
Dir[File.join(__dir__, "support", "*.rb")].each { |helper| require helper }

# The bench and the children print UTF-8 (×, –, µ) whatever the locale; on a machine that
# has none set (a fresh minimal Debian), Ruby would read their output as US-ASCII.
Encoding.default_external = Encoding::UTF_8

Minitest::Test.include(ScratchLog)
