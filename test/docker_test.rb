# frozen_string_literal: true

require "test_helper"
require "net/http"
require "shellwords"
require_relative "../bench/allocator_bench/server"

# The seed's path on a real Docker engine: build the image (cached), bring docker-compose.yml
# up under a compose project of its own on a free loopback port, seed, the seed's `ab`
# load, the probe from inside the container, the database going away and coming back, and
# the allocator switched from the shell. Everything the project made is removed at the
# end, also when a step fails or the run is interrupted.
#
# Run alone with `bin/rake test:docker`; `STACK=trixie bin/rake test:docker` takes the
# Debian 13 stack (Ruby 3.3, Rails 7.2, Puma 6) through the same steps. The images are local stand-ins built from
# Debian's packages by bin/docker-images (no registry here) unless RUST_IMAGE,
# RUNTIME_IMAGE and POSTGRES_IMAGE name others.
class DockerTest < Minitest::Test
  ROOT = File.expand_path("..", __dir__)
  IMAGE_SETTINGS = %w[RUST_IMAGE RUNTIME_IMAGE POSTGRES_IMAGE].freeze
  # The seed's load, as its README gives it.
  AB_REQUESTS = 1000
  AB_CONCURRENCY = 25
  CONFIGURATIONS = {
    "glibc" => {},
    "arena2" => { "MALLOC_ARENA_MAX" => "2" },
    "jemalloc" => { "LD_PRELOAD" => "libjemalloc.so.2" }
  }.freeze

  PROJECT_PREFIX = "bloatprobe-test-"

  def setup
    skip_or_fail_without_engine
    remove_abandoned_stacks
    @project = "#{PROJECT_PREFIX}#{Process.pid}"
    @port = AllocatorBench::ChildProcess.free_port
    @env = image_settings.merge("PORT" => @port.to_s, "MALLOC_ARENA_MAX" => nil, "LD_PRELOAD" => nil)
    compose("build", "--force-rm", timeout: 1800)
  end

  def teardown
    return unless @project

    remove_stack
    %w[container network volume].each do |kind|
      left = capture("docker", kind, "ls", "-q", "--filter", "label=com.docker.compose.project=#{@project}",
                     *(kind == "container" ? ["-a"] : []))
      assert_empty left.strip, "#{kind}s of #{@project} left behind"
    end
  end

  # Minitest lets Interrupt and signals pass teardown by; the stack comes down all the same.
  def run
    super
  ensure
    remove_stack if @project && !@removed
  end

  def test_the_seed_path_the_probe_and_the_allocator_switch
    waits_for_the_database_without_serving_errors
    the_first_boot_seeds_only_on_rails_seven
    seeds_both_ways
    rows = CONFIGURATIONS.map do |name, env|
      restart_with(env) unless name == "glibc"
      load_and_measure(name)
    end
    assert_operator rows.find { _1[:name] == "arena2" }[:arenas], :<=, 2
    assert_equal "jemalloc", rows.find { _1[:name] == "jemalloc" }[:allocator]
    print_table(rows)
  end

  # BloatProbe.cgroup in a real container (cgroup v1 on this engine) with a memory limit
  # and one CPU: glibc still sizes its arena cap from the host's CPUs.
  def test_the_container_readings_under_a_memory_limit_and_one_cpu
    script = 'require "bloat_probe"; require "json"; puts JSON.generate(BloatProbe.cgroup.to_h)'
    out = capture("docker", "run", "--rm", "--memory", "512m", "--cpus", "1", "--cpuset-cpus", "0",
                  "bloat-probe:#{stack}", "bundle", "exec", "ruby", "-e", script)
    cgroup = JSON.parse(out.lines.last, symbolize_names: true)
    assert_equal 512 << 20, cgroup[:memory_limit]
    assert_operator cgroup[:memory_usage], :>, 0
    assert_operator cgroup[:anon], :>, 0
    assert_in_delta 1.0, cgroup[:cpu_quota], 0.001
    assert_equal 1, cgroup[:cpuset_cpus]
    assert_equal 8 * Etc.nprocessors, cgroup[:arena_cap], "glibc counts the host's #{Etc.nprocessors} CPUs"
    puts "\nBloatProbe.cgroup in docker run --memory 512m --cpus 1 --cpuset-cpus 0: #{cgroup}"
  end

  # The guard in a container under --memory 256m (no swap): a process that keeps 8 MiB
  # every quarter second would pass the limit. Without the guard the kernel kills it
  # (OOMKilled); with a budget of 70% of the limit, the guard asks for a restart first and
  # the process exits by itself. While it holds still, BloatProbe.cgroup agrees with
  # `docker stats`.
  GUARDED = <<~RUBY
    require "bloat_probe"
    require "json"
    $stdout.sync = true
    done = Queue.new
    restart = lambda do |_decision|
      done << :restart
      true
    end
    if ENV["GUARD"] == "on"
      guard = BloatProbe::Guard.new(budget: "70%", strikes: 1, interval: 1, restart: restart, log: ->(line) { puts line })
    end
    held = ["x" * (64 << 20)]
    puts "steady \#{JSON.generate(BloatProbe.cgroup.to_h)}"
    sleep 6 # docker stats, meanwhile
    guard&.start
    Thread.new do
      48.times { held << "x" * (8 << 20); sleep 0.25 }
      done << :all_held
    end
    puts "done=\#{done.pop} held_mib=\#{held.sum(&:bytesize) >> 20}"
  RUBY
  MEMORY_LIMIT = 256 << 20

  def test_the_guard_acts_before_the_containers_memory_limit
    killed = run_guarded("off")
    assert_equal [true, 137], killed.values_at(:oom_killed, :exit_code), "the load passes the limit unguarded"

    guarded = run_guarded("on")
    assert_equal [false, 0], guarded.values_at(:oom_killed, :exit_code), guarded[:logs]
    decision = "action=restart reason=over_budget_1_checks verdict=\\w+ .* budget_mib=179\\.2 "
    assert_match(/^bloat_probe guard pid=\d+ #{decision}/, guarded[:logs])
    assert_match(/^done=restart held_mib=\d+$/, guarded[:logs])
    cgroup = JSON.parse(guarded[:logs][/^steady (.*)$/, 1], symbolize_names: true)
    assert_equal MEMORY_LIMIT, cgroup[:memory_limit]
    # docker stats shows the usage less the inactive page cache, a part of `file`.
    low = cgroup[:memory_usage] - cgroup[:file] - (2 << 20)
    assert_includes low..(cgroup[:memory_usage] + (2 << 20)), guarded[:docker_stats],
                    "docker stats against #{cgroup}"
    puts "\nThe guard under docker run --memory 256m: unguarded OOMKilled=#{killed[:oom_killed]} " \
         "(exit #{killed[:exit_code]}); guarded OOMKilled=#{guarded[:oom_killed]}, " \
         "#{guarded[:logs][/^bloat_probe guard .*$/]}; BloatProbe.cgroup memory_usage " \
         "#{cgroup[:memory_usage]} against docker stats #{guarded[:docker_stats]}"
  end

  def test_the_probe_in_the_container_and_the_database_going_away
    compose("up", "-d")
    wait_for_posts
    probe_from_runner_and_console
    answers_503_while_the_database_is_stopped_and_recovers
  end

  private

  # --- the steps ---------------------------------------------------------------------

  # The app first, alone: its entrypoint waits for PostgreSQL (nothing listens on the port
  # meanwhile, so no client can get a 500), then prepares the database once it is there.
  def waits_for_the_database_without_serving_errors
    compose("up", "-d", "--no-deps", "bloat")
    deadline = monotonic + 8
    while monotonic < deadline
      code = status_of("/posts")
      refute_equal 500, code, "a 500 while the database was not there yet"
      sleep 0.5
    end
    assert_match(/waiting for the database/, compose("logs", "bloat"))
    compose("up", "-d")
    wait_for_posts
  end

  # The entrypoint runs `db:prepare`, as stock Rails images do. On the database the db
  # container made empty, Rails 6.1's only migrates; Rails 7.1+'s (Debian 13) also loads
  # the seeds, since it finds no schema there. Either way the page renders.
  def the_first_boot_seeds_only_on_rails_seven
    body = get("/posts").body
    assert_match(%r{<h1>Posts</h1>}, body)
    links = body.scan(%r{href="/posts/\d+"}).size
    if stack == "trixie"
      assert_operator links, :>, 0, "Rails 7.2's db:prepare seeded the new database"
    else
      assert_equal 0, links, "no post links before the seed"
    end
  end

  def seeds_both_ways
    assert_match(/Seeded 1000 posts/, compose("exec", "-T", "bloat", "bin/rails", "db:seed"))
    assert_match(/Seeded 1000 posts/, compose("exec", "-T", "bloat", "bundle", "exec", "rails", "db:seed"))
    assert_operator get("/posts").body.scan(%r{href="/posts/\d+"}).size, :>, 0
  end

  def restart_with(env)
    @env = @env.merge(env)
    compose("up", "-d")
    wait_for_posts
  end

  def load_and_measure(name)
    out = capture("timeout", "--kill-after=5", "600", "ab", "-k", "-c", AB_CONCURRENCY.to_s, "-n", AB_REQUESTS.to_s,
                  "http://127.0.0.1:#{@port}/posts")
    assert_match(/^Complete requests:\s+#{AB_REQUESTS}$/, out, "#{name}: ab")
    assert_match(/^Failed requests:\s+0$/, out, "#{name}: ab")
    refute_match(/^Non-2xx responses/, out, "#{name}: ab")
    stats = StatsDocument.parse(get("/bloat/stats.json").body)
    arena_stats = stats.arena_stats
    metrics = get("/bloat/metrics").body
    assert_match(/^process_resident_memory_bytes \d+$/, metrics, "#{name}: the metrics, as Prometheus scrapes them")
    assert_match(/^bloat_probe_allocator_info\{allocator="#{arena_stats.allocator}",/, metrics)
    read_from_outside(arena_stats, name)
    {
      name: name, verdict: stats.diagnosis.verdict.to_s, docker_stats: docker_stats_memory, rss: arena_stats.rss,
      arenas: arena_stats.arena_count, allocator: arena_stats.allocator.to_s,
      req_per_s: out[/^Requests per second:\s+([\d.]+)/, 1].to_f
    }
  end

  # bloat-probe in the image, reading the app (the container's PID 1) from outside, as an
  # operator would with `docker compose exec bloat bloat-probe 1`: the same allocator, and
  # under glibc the same arenas as the app's own reading just before.
  def read_from_outside(arena_stats, name)
    outside = JSON.parse(compose("exec", "-T", "bloat", "bloat-probe", "1", "--json"), symbolize_names: true)
    assert_equal arena_stats.allocator.to_s, outside[:arena_stats][:allocator], "#{name}: bloat-probe 1"
    return unless arena_stats.allocator.to_s == "glibc"

    assert_equal arena_stats.arena_count, outside[:arena_stats][:glibc][:arena_count], "#{name}: bloat-probe 1"
  end

  # What each stack's image runs: Ruby, Rails and Puma of its Debian release.
  STACK_VERSIONS = { "bookworm" => /\A3\.1\.\d+ 6\.1\.\d+\.?\d* 5\.6\.\d+$/,
                     "trixie" => /\A3\.3\.\d+ 7\.2\.\d+\.?\d* 6\.\d+\.\d+$/ }.freeze

  def probe_from_runner_and_console
    versions = compose("exec", "-T", "bloat", "bin/rails", "runner",
                       'puts [RUBY_VERSION, Rails.version, Gem.loaded_specs.fetch("puma").version].join(" ")')
    assert_match STACK_VERSIONS.fetch(stack), versions.lines.last.to_s.strip
    runner = compose("exec", "-T", "bloat", "bin/rails", "runner", "p BloatProbe.arena_stats")
    assert_match(/#<BloatProbe::ArenaStats glibc [\d.]+, rss=.*, \d+ arenas/, runner)
    assert_match(/^\s+0\s+[\d.]+ \w+/, runner, "one line per arena")
    console = compose("exec", "-T", "bloat", "bin/rails", "console", stdin: "BloatProbe.arena_stats\n")
    assert_match(/#<BloatProbe::ArenaStats glibc/, console)
    refute_match(/Ignoring bloat_probe/, console)
  end

  # Pages not served yet are read from the database, so each request below misses the cache.
  def answers_503_while_the_database_is_stopped_and_recovers
    compose("stop", "db")
    assert_equal 503, status_of("/posts?page=7")
    # Rails 7.1+ names the unknown host with a subclass of its own.
    assert_match(/ActiveRecord::(ConnectionNotEstablished|DatabaseConnectionError)/,
                 compose("logs", "--tail", "40", "bloat"))
    compose("start", "db")
    deadline = monotonic + 60
    code = nil
    (8..).each do |page|
      code = status_of("/posts?page=#{page}")
      break if code == 200 || monotonic > deadline

      sleep 1
    end
    assert_equal 200, code, "/posts once the database is back, without restarting the app"
  end

  # --- measuring -----------------------------------------------------------------------

  # What the seed's author compared: the container's memory as `docker stats` reports it.
  def docker_stats_memory
    id = compose("ps", "-q", "bloat").strip
    capture("docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", id).split(" / ").first
  end

  def print_table(rows)
    glibc = rows.first
    puts "\nThe seed's load (ab -k -c #{AB_CONCURRENCY} -n #{AB_REQUESTS} /posts) under Docker:"
    columns = ["config", "docker stats", "RSS (MB)", "arenas", "allocator", "req/s", "verdict"]
    puts format("%-10s %14s %10s %7s %10s %8s  %s", *columns)
    rows.each do |row|
      puts format("%-10s %14s %10.0f %7s %10s %8.1f  %s", row[:name], row[:docker_stats], row[:rss] / 1e6,
                  row[:arenas] || "-", row[:allocator], row[:req_per_s], row[:verdict])
    end
    puts format("RSS ratio to glibc: %s",
                rows.drop(1).map { |row| format("%s %.2f", row[:name], row[:rss].fdiv(glibc[:rss])) }.join(", "))
  end

  # One run of GUARDED in a container of its own, labelled with this test's project so that
  # teardown finds it if it is left behind; what docker inspect and docker stats said.
  def run_guarded(guard)
    name = "#{@project}-guard-#{guard}"
    capture("docker", "run", "-d", "--name", name, "--label", "com.docker.compose.project=#{@project}",
            "--memory", MEMORY_LIMIT.to_s, "--memory-swap", MEMORY_LIMIT.to_s, "-e", "GUARD=#{guard}",
            "bloat-probe:#{stack}", "bundle", "exec", "ruby", "-e", GUARDED)
    deadline = monotonic + 60
    sleep 0.5 until capture("docker", "logs", name).include?("steady ") || monotonic > deadline
    stats = capture("docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name).split(" / ").first
    capture("timeout", "120", "docker", "wait", name)
    state = JSON.parse(capture("docker", "inspect", "--format", "{{json .State}}", name))
    { oom_killed: state["OOMKilled"], exit_code: state["ExitCode"], logs: capture("docker", "logs", name),
      docker_stats: bytes_of(stats) }
  ensure
    capture("docker", "rm", "-f", name, check: false)
  end

  # "64.5MiB" as docker stats prints it, in bytes.
  def bytes_of(text)
    number, unit = text.to_s.strip.match(/\A([\d.]+)\s*([KMGT]?i?B)\z/)&.captures
    flunk "docker stats printed #{text.inspect}" unless number
    (Float(number) * { "B" => 1, "KiB" => 1 << 10, "MiB" => 1 << 20, "GiB" => 1 << 30 }.fetch(unit)).round
  end

  # --- plumbing ------------------------------------------------------------------------

  def remove_stack
    @removed = true
    compose("down", "-v", "--remove-orphans", "--timeout", "5", check: false)
  end

  # A run killed outright (SIGKILL, a closed terminal during its clean-up) could not
  # remove its stack: the next run does, for every project whose process is gone.
  def remove_abandoned_stacks
    projects = %w[container network volume].flat_map do |kind|
      all = kind == "container" ? ["-a"] : []
      capture("docker", kind, "ls", *all, "--filter", "label=com.docker.compose.project",
              "--format", '{{.Label "com.docker.compose.project"}}').split
    end
    projects.uniq.grep(/\A#{PROJECT_PREFIX}(\d+)\z/) do |project|
      next if process_alive?(Integer(project.delete_prefix(PROJECT_PREFIX)))

      capture(*compose_command, "-p", project, "-f", File.join(ROOT, "docker-compose.yml"), "down", "-v",
              "--remove-orphans", "--timeout", "5", check: false)
    end
  end

  def process_alive?(pid)
    Process.kill(0, pid)
    true
  rescue Errno::ESRCH
    false
  rescue Errno::EPERM
    true
  end

  def skip_or_fail_without_engine
    engine = system("docker", "info", out: File::NULL, err: File::NULL) && !compose_command.nil?
    return if engine

    message = "no Docker engine with Compose here (docker info, docker compose / docker-compose)"
    flunk message if ENV["CI"] == "true"
    skip message
  end

  def compose_command
    @compose_command ||= if system("docker", "compose", "version", out: File::NULL, err: File::NULL)
                           %w[docker compose]
                         elsif system("docker-compose", "version", out: File::NULL, err: File::NULL)
                           %w[docker-compose]
                         end
  end

  def stack
    @env["STACK"] || "bookworm"
  end

  def image_settings
    return ENV.to_h.slice(*IMAGE_SETTINGS, "STACK") if IMAGE_SETTINGS.all? { ENV[_1] }

    out = capture(File.join(ROOT, "bin/docker-images"), timeout: 1800)
    out.scan(/^export (\w+)=(\S+)$/).to_h
  end

  def compose(*args, check: true, timeout: 300, stdin: nil)
    command = [*compose_command, "-p", @project, "-f", File.join(ROOT, "docker-compose.yml"), *args]
    capture(*command, check: check, timeout: timeout, stdin: stdin)
  end

  # Every child is bounded in time; stderr comes along (compose logs there).
  def capture(*command, check: true, timeout: 300, stdin: nil)
    out, status = Open3.capture2e(@env || {}, "timeout", "--kill-after=5", timeout.to_s, *command,
                                  chdir: ROOT, stdin_data: stdin.to_s)
    assert status.success?, "#{command.shelljoin} failed (#{status}):\n#{out.lines.last(30).join}" if check
    out
  end

  def get(path)
    Net::HTTP.start("127.0.0.1", @port, open_timeout: 2, read_timeout: 60) { |http| http.get(path) }
  end

  def status_of(path)
    get(path).code.to_i
  rescue SystemCallError, EOFError, Net::OpenTimeout, Net::ReadTimeout
    nil
  end

  def wait_for_posts(timeout: 120)
    deadline = monotonic + timeout
    code = nil
    until monotonic > deadline
      code = status_of("/posts")
      return if code == 200

      refute_equal 500, code, "/posts answered 500 while the stack started"
      sleep 1
    end
    flunk "/posts did not answer 200 within #{timeout}s (last: #{code.inspect}):\n#{compose("logs", "--tail", "30",
                                                                                            check: false)}"
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
end
