# frozen_string_literal: true

require "test_helper"
require "etc"
require_relative "../bench/allocator_bench/configuration"
require_relative "../bench/allocator_bench/server"

# The PostgreSQL path that docker-compose takes (DATABASE_URL), on a real PostgreSQL server
# of our own: a throwaway cluster on a free loopback port, gone after the test.
class PostgresqlTest < Minitest::Test
  APP_DIR = AllocatorBench::Server::APP_DIR
  POSTS = 120

  def setup
    @dir = Dir.mktmpdir("bloat_probe-pg")
    bin = Dir["/usr/lib/postgresql/*/bin"].max_by { |path| path[%r{/(\d+)/bin}, 1].to_i }
    flunk "PostgreSQL's server is not installed (bin/setup installs the postgresql package)" unless bin
    @pg_ctl = File.join(bin, "pg_ctl")
    @port = AllocatorBench::ChildProcess.free_port
    # PostgreSQL refuses to run as root: then the cluster belongs to the postgres user.
    FileUtils.chown_R("postgres", nil, @dir) if Process.uid.zero?
    # UTF-8 whatever the machine's locale: without one, initdb would make SQL_ASCII
    # templates, from which Rails cannot create its UTF-8 database.
    as_owner(File.join(bin, "initdb"), "-D", data_dir, "-U", "postgres", "-A", "trust", "--no-sync",
             "-E", "UTF8", "--locale=C")
    as_owner(@pg_ctl, "-D", data_dir, "-l", File.join(@dir, "server.log"), "-w", "-t", "60", "start",
             "-o", "-c listen_addresses=127.0.0.1 -p #{@port} -k #{@dir} -c fsync=off")
    @url = "postgres://postgres@127.0.0.1:#{@port}/bloat_probe_test"
  end

  def teardown
    @server&.stop
    as_owner(@pg_ctl, "-D", data_dir, "-m", "immediate", "stop") if @pg_ctl && File.exist?(File.join(data_dir,
                                                                                                     "postmaster.pid"))
  ensure
    FileUtils.rm_rf(@dir)
  end

  def test_the_app_prepares_seeds_and_serves_posts_from_postgresql
    env = { "RAILS_ENV" => "production", "DATABASE_URL" => @url, "POSTS" => POSTS.to_s }
    run_app_command(env, "bin/rails", "db:prepare", "db:seed")
    assert_equal POSTS.to_s, psql("SELECT count(*) FROM posts")

    adapter = run_app_command(env, "bin/rails", "runner", "print ActiveRecord::Base.connection.adapter_name")
    assert_equal "PostgreSQL", adapter.lines.last

    config = AllocatorBench::Configuration.new(name: "postgresql", env: { "DATABASE_URL" => @url })
    @server = AllocatorBench::Server.new(config, threads: 5, log_path: File.join(@dir, "puma.log")).start
    page = @server.get("/posts")
    assert_equal "200", page.code, @server.log_tail
    assert_includes page.body, "Post 1: "
    sessions = psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'bloat_probe_test'").to_i
    assert_operator sessions, :>=, 1, "Puma holds a connection to this PostgreSQL"
  end

  private

  def data_dir
    File.join(@dir, "data")
  end

  def as_owner(*command)
    command = ["runuser", "-u", "postgres", "--", *command] if Process.uid.zero?
    out, status = Open3.capture2e(*command)
    assert status.success?, "#{command.join(" ")} failed:\n#{out}"
    out
  end

  def psql(sql)
    out, status = Open3.capture2e("psql", "-h", "127.0.0.1", "-p", @port.to_s, "-U", "postgres",
                                  "-d", "bloat_probe_test", "-tAc", sql)
    assert status.success?, out
    out.strip
  end

  def run_app_command(env, *command)
    out, status = Open3.capture2e(env, "timeout", "--kill-after=5", "120", *command, chdir: APP_DIR)
    assert status.success?, "#{command.join(" ")} failed:\n#{out}"
    out.strip
  end
end
