# frozen_string_literal: true

require "test_helper"
require "open3"
require "rubygems/package"
require "tmpdir"

# The platform gem (bin/rake gem:native) as a user installs it: in fresh Debian 12 and 13
# containers with Ruby, Rails and Puma from Debian's packages and no compiler, `gem install`
# takes it as it is, the extension loads for that Ruby, the Puma plugin logs a verdict in
# a new Rails app, and `bloat-probe` reads a running process. Its shared objects need no
# glibc newer than Debian 12's.
class NativeGemTest < Minitest::Test
  ROOT = File.expand_path("..", __dir__)
  GLIBC_FLOOR = Gem::Version.new("2.36")
  STACKS = { "bookworm" => "3.1", "trixie" => "3.3" }.freeze
  # Tools whose presence would let an install compile: none may be in the image.
  COMPILERS = %w[cc gcc clang cargo rustc make].freeze

  def platform_gem
    Dir[File.join(ROOT, "pkg", "bloat_probe-*-x86_64-linux.gem")].max || flunk("bin/rake gem:native first")
  end

  def test_each_shared_object_needs_no_glibc_newer_than_debian_12s
    Dir.mktmpdir("bloat_probe-native") do |dir|
      Gem::Package.new(platform_gem).extract_files(dir)
      objects = Dir[File.join(dir, "lib", "bloat_probe", "*", "bloat_probe.so")].sort
      assert_equal(STACKS.values.sort, objects.map { |path| File.basename(File.dirname(path)) })
      objects.each do |object|
        symbols, status = Open3.capture2("objdump", "-T", object)
        assert status.success?, "objdump -T #{object}"
        needed = symbols.scan(/\bGLIBC_(\d+(?:\.\d+)+)\b/).flatten.uniq.map { |version| Gem::Version.new(version) }
        refute_empty needed, object
        assert_operator needed.max, :<=, GLIBC_FLOOR, "#{object} needs glibc #{needed.max}"
      end
    end
  end

  STACKS.each do |stack, ruby|
    define_method("test_on_#{stack}_it_installs_with_no_compiler_and_runs") { installs_and_runs(stack, ruby) }
  end

  private

  # The user's steps inside the release's runtime image, each reporting a line the test reads.
  SCRIPT = <<~'BASH'
    set -euo pipefail
    for tool in $COMPILERS; do
      if command -v "$tool" >/dev/null; then echo "compiler=$tool"; fi
    done
    echo "ruby_h=$(ls "$(ruby -rrbconfig -e 'print RbConfig::CONFIG["rubyhdrdir"]')/ruby.h" 2>/dev/null || true)"
    started=$(date +%s%N)
    gem install --local --no-document /pkg/gem/"$GEM" 2>&1 | sed 's/^/install: /'
    echo "install_ms=$(( ($(date +%s%N) - started) / 1000000 ))"
    ruby -rbloat_probe -rjson -e '
      stats = BloatProbe.arena_stats
      puts "inside=" + JSON.generate(loaded: $LOADED_FEATURES.grep(/bloat_probe\.so\z/), ruby: RUBY_VERSION,
                                     allocator: stats.allocator, arenas: stats.arena_count,
                                     verdict: BloatProbe.diagnose.verdict)'
    ruby -e 'a = Array.new(100_000) { "x" * 100 }; $stdout.puts(a.size); $stdout.flush; sleep' &
    target=$!
    sleep 1
    echo "outside=$(bloat-probe "$target" --json | tr -d '\n')"
    echo "statm=$target $(cat /proc/$target/statm)"
    kill "$target"
    cd /tmp
    # Both releases' flags (each ignores the other's): no asset pipeline, JavaScript or
    # bootsnap, which Debian's runtime image does not carry.
    rails new app --skip-bundle --skip-git --skip-test --skip-system-test --skip-bootsnap --skip-sprockets \
      --skip-asset-pipeline --skip-javascript --skip-jbuilder --skip-spring --skip-listen >/dev/null
    cd app
    # The generated Gemfile's other gems that Debian does not package (web-console, byebug)
    # are dropped, as a user of Debian's gems does.
    ruby -i -ne 'name = $_[/^\s*gem\s+["\x27]([^"\x27]+)/, 1]
                 print if name.nil? || Gem::Specification.find_all_by_name(name).any?' Gemfile
    echo 'gem "bloat_probe"' >>Gemfile
    echo 'plugin :bloat_probe' >>config/puma.rb
    bundle install --local --quiet 2>&1 | grep -v "as root\|non-root" || true
    BLOAT_PROBE_REPORT_INTERVAL=1 RAILS_ENV=production SECRET_KEY_BASE=test \
      timeout 20 bundle exec puma -b tcp://127.0.0.1:3999 >puma.log 2>&1 &
    for _ in $(seq 1 150); do
      grep -q 'bloat_probe pid=.* verdict=' puma.log && break
      sleep 0.1
    done
    grep -m1 'bloat_probe pid=.* verdict=' puma.log | sed 's/^/puma: /' || sed 's/^/puma_log: /' puma.log
  BASH

  def installs_and_runs(stack, ruby)
    build, status = Open3.capture2e(File.join(ROOT, "bin/build-stage"), stack, "runtime")
    assert status.success?, build
    name = "bloatprobe-native-#{stack}-#{Process.pid}"
    gem = platform_gem
    out, status = Open3.capture2e("docker", "run", "--rm", "--name", name, "-v", "#{File.dirname(gem)}:/pkg/gem:ro",
                                  "-e", "GEM=#{File.basename(gem)}", "-e", "COMPILERS=#{COMPILERS.join(" ")}",
                                  "bloat-probe/runtime:#{stack}", "bash", "-c", SCRIPT)
    assert status.success?, out
    lines = out.lines.map(&:chomp)
    field = ->(key) { lines.grep(/\A#{key}=/).map { |line| line.delete_prefix("#{key}=") } }
    assert_empty field.call("compiler"), "no compiler in the image"
    assert_equal [""], field.call("ruby_h"), "no Ruby headers in the image"
    install = lines.grep(/\Ainstall: /)
    assert install.any? { |line| line.include?("Successfully installed bloat_probe-") }, install.join("\n")
    refute install.any? { |line| line.include?("Building native extensions") }, install.join("\n")
    inside = JSON.parse(field.call("inside").first || flunk(out), symbolize_names: true)
    assert_match(%r{/bloat_probe/#{Regexp.escape(ruby)}/bloat_probe\.so\z}, inside[:loaded].first)
    assert inside[:ruby].start_with?(ruby), inside[:ruby]
    assert_equal "glibc", inside[:allocator]
    outside = JSON.parse(field.call("outside").first || flunk(out), symbolize_names: true)
    pid, *statm = field.call("statm").first.split
    assert_equal Integer(pid), outside[:pid]
    assert_in_delta Integer(statm[1]) * 4096, outside[:memory][:rss], 4 << 20, "bloat-probe against the kernel's statm"
    assert lines.any? { |line| line.match?(/\Apuma: .*bloat_probe pid=\d+ verdict=\w+ rss_mib=/) }, out
    warn "  the platform gem installed on #{stack} (Ruby #{inside[:ruby]}) in #{field.call("install_ms").first} ms"
  ensure
    system("docker", "rm", "-f", name, out: File::NULL, err: File::NULL) if name
  end
end
