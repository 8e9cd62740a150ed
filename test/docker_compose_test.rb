# frozen_string_literal: true

require "test_helper"
require "yaml"

# Debian's docker-compose validates the file and prints it resolved, without an engine:
# what users get by default and what the variables change. (test/docker_test.rb runs it.)
class DockerComposeTest < Minitest::Test
  ROOT = File.expand_path("..", __dir__)

  def resolved(env = {})
    out, err, status = Open3.capture3(env, "docker-compose", "-f", "docker-compose.yml", "config", chdir: ROOT)
    assert status.success?, err
    YAML.safe_load(out)
  end

  def test_the_file_is_valid_and_has_the_app_and_postgresql
    services = resolved("PORT" => nil).fetch("services")
    assert_equal %w[bloat db], services.keys.sort
    bloat = services["bloat"]
    # docker-compose 1.29 prints a port with a host address in the short form.
    assert_equal ["127.0.0.1:3000:3000/tcp"], bloat["ports"], "published on the host's loopback only"
    assert_match %r{\Apostgres://}, bloat.dig("environment", "DATABASE_URL")
    assert_equal "25", bloat.dig("environment", "RAILS_MAX_THREADS")
    assert_match(/postgres/, services.dig("db", "image"))
  end

  def test_public_images_by_default_and_each_one_overridable
    cleared = { "RUST_IMAGE" => nil, "RUNTIME_IMAGE" => nil, "POSTGRES_IMAGE" => nil, "PORT" => nil }
    services = resolved(cleared).fetch("services")
    assert_equal({ "RUST_IMAGE" => "rust:1-bookworm", "RUNTIME_IMAGE" => "debian:bookworm-slim" },
                 services.dig("bloat", "build", "args"))
    assert_equal "postgres:15-bookworm", services.dig("db", "image")
    local = resolved(cleared.merge("RUST_IMAGE" => "r:1", "RUNTIME_IMAGE" => "b:1", "POSTGRES_IMAGE" => "p:1",
                                   "PORT" => "3001")).fetch("services")
    assert_equal({ "RUST_IMAGE" => "r:1", "RUNTIME_IMAGE" => "b:1" }, local.dig("bloat", "build", "args"))
    assert_equal "p:1", local.dig("db", "image")
    assert_equal ["127.0.0.1:3001:3000/tcp"], local.dig("bloat", "ports")
  end

  def test_the_allocator_is_switched_from_the_environment
    env = resolved("MALLOC_ARENA_MAX" => "2", "LD_PRELOAD" => "libjemalloc.so.2").dig("services", "bloat", "environment")
    assert_equal "2", env["MALLOC_ARENA_MAX"]
    assert_equal "libjemalloc.so.2", env["LD_PRELOAD"]
    plain = resolved("MALLOC_ARENA_MAX" => nil, "LD_PRELOAD" => nil).dig("services", "bloat", "environment")
    assert_equal "", plain["MALLOC_ARENA_MAX"]
    assert_equal "", plain["LD_PRELOAD"]
  end
end
