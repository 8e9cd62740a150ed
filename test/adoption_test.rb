# frozen_string_literal: true

require "test_helper"
require "net/http"
require "tmpdir"
require_relative "../bench/allocator_bench/child_process"

# The README's "In your own app", followed in a Rails app that `rails new` generates here
# (this release's Rails): the gem from this checkout in the Gemfile, `plugin :bloat_probe`
# in config/puma.rb, `bundle exec puma`. Without Puma in the bundle it fails as the README
# says; with `gem "puma"` the process logs its verdict and serves the metrics, and the
# gem's `bloat-probe` reads it from outside.
class AdoptionTest < Minitest::Test
  ROOT = File.expand_path("..", __dir__)
  # Offline, Bundler can take only the gems installed here: the development tools and
  # asset gems `rails new` lists are not all Debian packages.
  UNAVAILABLE = ->(name) { Gem::Specification.find_all_by_name(name).empty? }

  def test_the_readme_steps_in_a_freshly_generated_app
    Dir.mktmpdir("bloat_probe-adoption") do |dir|
      app = File.join(dir, "shop")
      run!(dir, "rails", "new", app, "--minimal", "--skip-bundle", "--skip-git", "--skip-test", "--skip-bootsnap",
           "--skip-system-test", skip_assets(dir), "-q")
      gems = File.readlines(File.join(app, "Gemfile")).reject do |line|
        (name = line[/^\s*gem\s+["']([\w-]+)["']/, 1]) && (name == "puma" || UNAVAILABLE.call(name))
      end
      gems << %(gem "bloat_probe", path: #{ROOT.inspect}\n)
      File.write(File.join(app, "Gemfile"), gems.join)
      File.open(File.join(app, "config/puma.rb"), "a") { |file| file.puts("plugin :bloat_probe") }
      run!(app, "bundle", "install", "--local")

      out, status = Open3.capture2e(env, "timeout", "60", "bundle", "exec", "puma", chdir: app)
      refute status.success?
      assert_match(/puma is not currently included in the bundle/, out)

      File.write(File.join(app, "Gemfile"), [*gems, %(gem "puma"\n)].join)
      run!(app, "bundle", "install", "--local")
      serves_its_verdict_and_metrics(app)
    end
  end

  private

  def serves_its_verdict_and_metrics(app)
    port, metrics_port = Array.new(2) { AllocatorBench::ChildProcess.free_port }
    log = File.join(app, "puma.log")
    pid = Process.spawn(env.merge("BLOAT_PROBE_METRICS_PORT" => metrics_port.to_s), "bundle", "exec", "puma",
                        "-b", "tcp://127.0.0.1:#{port}", chdir: app, out: log, err: %i[child out])
    line = wait_for(log) { File.read(log)[/^bloat_probe pid=#{pid} verdict=\w+ rss_mib=.*$/] }
    assert_match(/allocator=glibc-[\d.]+/, line)
    metrics = wait_for(log) do
      Net::HTTP.start("127.0.0.1", metrics_port, open_timeout: 1) { |http| http.get("/metrics").body }
    rescue SystemCallError, Net::OpenTimeout
      nil
    end
    assert_match(/^bloat_probe_malloc_arenas [1-9]\d*$/, metrics)
    # The gem's executable, as the app's bundle gives it, reading the server from outside.
    report, status = Open3.capture2e(env, "bundle", "exec", "bloat-probe", pid.to_s, chdir: app)
    assert status.success?, report
    assert_match(/^process #{pid} \(.+\): glibc [\d.]+/, report)
    assert_match(/^verdict  \w+: /, report)
  ensure
    if pid
      Process.kill("TERM", pid)
      Timeout.timeout(30) { Process.wait(pid) }
    end
  end

  # The asset pipeline's gems are not Debian packages everywhere (propshaft, in Debian 13),
  # and its initializer needs them: skipped, by the name this Rails gives the option.
  def skip_assets(dir)
    help = run!(dir, "rails", "new", "--help")
    help[/--skip-asset-pipeline|--skip-sprockets/] or flunk("rails new --help names no way to skip the assets")
  end

  def env
    { "RAILS_ENV" => "production", "SECRET_KEY_BASE" => "adoption-test", "BLOAT_PROBE_REPORT_INTERVAL" => "1",
      "BUNDLE_GEMFILE" => nil, "RUBYOPT" => nil, "BUNDLE_BIN_PATH" => nil }
  end

  def run!(dir, *command)
    out, status = Open3.capture2e(env, "timeout", "300", *command, chdir: dir)
    assert status.success?, "#{command.join(" ")} failed (#{status}):\n#{out.lines.last(20).join}"
    out
  end

  # The block's first truthy value, polled for up to 60 s.
  def wait_for(log)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 60
    loop do
      value = yield
      return value if value

      flunk "not within 60 s:\n#{File.read(log)[-3000..]}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep 0.25
    end
  end
end
