# frozen_string_literal: true

require "test_helper"

# Real headless Chromium from Debian's packages (chromium, chromium-driver). The flags
# keep it off the network, which these machines do not have.
class ApplicationSystemTestCase < ActionDispatch::SystemTestCase
  CHROMIUM = ENV.fetch("CHROMIUM", "/usr/bin/chromium")
  CHROMEDRIVER = ENV.fetch("CHROMEDRIVER", "/usr/bin/chromedriver")

  # A Proc: Rails 6.1 calls it to preload the driver, and Selenium accepts one.
  Selenium::WebDriver::Chrome::Service.driver_path = -> { CHROMEDRIVER }

  # Debian 13 pairs Rails 7.2, which asks Selenium's DriverFinder (4.11+) for the driver's
  # path while preloading, with selenium-webdriver 4.4, which has none: the answer is
  # Debian's chromedriver, whatever the version.
  unless Selenium::WebDriver.const_defined?(:DriverFinder)
    module Selenium::WebDriver::DriverFinder
      def self.path(_options, _service) = ApplicationSystemTestCase::CHROMEDRIVER
    end
  end

  driven_by :selenium, using: :headless_chrome, screen_size: [1280, 900] do |options|
    options.binary = CHROMIUM
    %w[--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-background-networking
       --disable-component-update --disable-sync --no-first-run].each { |flag| options.add_argument(flag) }
  end
end
