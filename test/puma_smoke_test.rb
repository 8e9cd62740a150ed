# frozen_string_literal: true

require "test_helper"
require "net/http"

# rails-app in production under Puma, 25 threads, one process, on a free loopback port,
# started by the documented command (`bundle exec rails server`), driven by 25 concurrent
# keep-alive clients for a bounded number of requests.
class PumaSmokeTest < Minitest::Test
  include RailsAppServer

  CLIENTS = 25
  REQUESTS_EACH = 8

  def setup
    glibc = AllocatorBench::Configuration.select("glibc").first
    @server = start_configuration(glibc, threads: 25, command: :rails_server)
  end

  def test_25_clients_are_all_answered_and_arenas_multiply
    before = @server.stats.arena_stats.arena_count
    statuses = Array.new(CLIENTS) do |client|
      Thread.new do
        Net::HTTP.start("127.0.0.1", @server.port, read_timeout: 60) do |http|
          Array.new(REQUESTS_EACH) { |i| http.get("/posts?page=#{(client + i) % 20 + 1}").code }
        end
      end
    end.flat_map(&:value)
    assert_equal CLIENTS * REQUESTS_EACH, statuses.size
    assert_equal ["200"], statuses.uniq
    after = @server.stats.arena_stats.arena_count
    assert_operator after, :>, 1, "arenas before #{before}, after #{after}"
    assert @server.alive?
    log = File.read(@log)
    assert_match(/Max threads: 25$/, log)
    assert_match(/Environment: production$/, log)
    assert_match(%r{Listening on http://127\.0\.0\.1:#{@server.port}$}, log, "loopback only")
  end
end
