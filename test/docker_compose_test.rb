# frozen_string_literal: true

require "test_helper"
require "yaml"

# Debian's docker-compose validates the file and prints it resolved, without an engine:
# what users get by default and what the variables change. (test/docker_test.rb runs it.)
class DockerComposeTest < Minitest::Test
  ROOT = File.expand_path("..", __dir__)

  def setup
    # Inside a stack's test image (bin/test-stack), which runs no Docker of its own.
    skip "docker-compose is not installed (bin/setup installs it)" unless system("command -v docker-compose >/dev/null")
  end

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

  # docker-compose passes the unset build arguments empty, and the Dockerfile reads empty
  # as unset: its defaults are the public images of STACK's release (checked by building
  # in test/docker_test.rb).
  def test_public_images_by_default_and_each_one_overridable
    cleared = { "STACK" => nil, "RUST_IMAGE" => nil, "RUNTIME_IMAGE" => nil, "POSTGRES_IMAGE" => nil, "PORT" => nil }
    services = resolved(cleared).fetch("services")
    assert_equal({ "STACK" => "", "RUST_IMAGE" => "", "RUNTIME_IMAGE" => "" }, services.dig("bloat", "build", "args"))
    assert_equal "bloat-probe:bookworm", services.dig("bloat", "image")
    assert_equal "postgres:15-bookworm", services.dig("db", "image")
    dockerfile = File.read(File.join(ROOT, "Dockerfile"))
    assert_includes dockerfile, "FROM ${RUST_IMAGE:-rust:1-${STACK:-bookworm}} AS build"
    assert_includes dockerfile, "FROM ${RUNTIME_IMAGE:-debian:${STACK:-bookworm}-slim} AS runtime"

    local = resolved(cleared.merge("STACK" => "trixie", "RUST_IMAGE" => "r:1", "RUNTIME_IMAGE" => "b:1",
                                   "POSTGRES_IMAGE" => "p:1", "PORT" => "3001")).fetch("services")
    assert_equal({ "STACK" => "trixie", "RUST_IMAGE" => "r:1", "RUNTIME_IMAGE" => "b:1" },
                 local.dig("bloat", "build", "args"))
    assert_equal "bloat-probe:trixie", local.dig("bloat", "image")
    assert_equal "p:1", local.dig("db", "image")
    assert_equal ["127.0.0.1:3001:3000/tcp"], local.dig("bloat", "ports")
  end

  def test_the_allocator_is_switched_from_the_environment
    env = resolved("MALLOC_ARENA_MAX" => "2", "LD_PRELOAD" => "libjemalloc.so.2").dig("services", "bloat",
                                                                                      "environment")
    assert_equal "2", env["MALLOC_ARENA_MAX"]
    assert_equal "libjemalloc.so.2", env["LD_PRELOAD"]
    plain = resolved("MALLOC_ARENA_MAX" => nil, "LD_PRELOAD" => nil).dig("services", "bloat", "environment")
    assert_equal "", plain["MALLOC_ARENA_MAX"]
    assert_equal "", plain["LD_PRELOAD"]
  end
end
