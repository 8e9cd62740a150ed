# frozen_string_literal: true

require "test_helper"
require "open3"
require "fileutils"
require "tmpdir"

# lib/bloat_probe.rb as the platform gem lays it out: the extension in a folder per Ruby
# minor version. A copy of lib/ with this build of the extension in this Ruby's folder
# loads it from there; one that carries only another Ruby's says which, and how to build.
class PrecompiledLoaderTest < Minitest::Test
  LIB = File.expand_path("../lib", __dir__)
  RUBY_MINOR = RUBY_VERSION[/\A\d+\.\d+/]

  def ruby_in(lib, code)
    Open3.capture3(RbConfig.ruby, "--disable-gems", "-rrubygems", "-I", lib, "-e", code)
  end

  def with_gem_layout(minor)
    Dir.mktmpdir("bloat_probe-layout") do |dir|
      lib = File.join(dir, "lib")
      FileUtils.mkdir_p(File.join(lib, "bloat_probe", minor))
      FileUtils.cp(File.join(LIB, "bloat_probe.rb"), lib)
      Dir[File.join(LIB, "bloat_probe", "**", "*.rb")].each do |file|
        target = File.join(lib, file.delete_prefix(LIB))
        FileUtils.mkdir_p(File.dirname(target))
        FileUtils.cp(file, target)
      end
      yield lib
    end
  end

  def test_the_folder_of_the_running_ruby_is_loaded
    with_gem_layout(RUBY_MINOR) do |lib|
      FileUtils.cp(Dir[File.join(LIB, "bloat_probe", "bloat_probe.so")].first || flunk("bin/rake compile first"),
                   File.join(lib, "bloat_probe", RUBY_MINOR))
      out, err, status = ruby_in(lib, <<~RUBY)
        require "bloat_probe"
        puts $LOADED_FEATURES.grep(/bloat_probe\\.so\\z/), BloatProbe::PRECOMPILED_FOR.inspect, BloatProbe.arena_stats.arena_count
      RUBY
      assert status.success?, err
      loaded, carried, arenas = out.lines.map(&:chomp)
      assert_equal File.join(File.realpath(lib), "bloat_probe", RUBY_MINOR, "bloat_probe.so"), File.realpath(loaded)
      assert_equal [RUBY_MINOR].inspect, carried
      assert_operator Integer(arenas), :>=, 1
    end
  end

  def test_a_ruby_the_gem_was_not_built_for_is_told_which_it_carries_and_how_to_build
    other = RUBY_MINOR == "3.3" ? "3.1" : "3.3"
    with_gem_layout(other) do |lib|
      _out, err, status = ruby_in(lib, 'require "bloat_probe"')
      refute status.success?
      expected = "bloat_probe #{BloatProbe::VERSION} carries its extension for Ruby #{other}, " \
                 "not #{RUBY_VERSION}: install the source gem, which builds it with cargo " \
                 "(gem install bloat_probe --platform ruby) (LoadError)"
      assert_includes err, expected
      assert_equal 1, err.lines.grep(/carries its extension/).size
    end
  end
end
