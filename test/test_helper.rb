# frozen_string_literal: true

require "minitest/autorun"
require "json"
require "etc"
require "open3"
require "rbconfig"
require "tmpdir"
require "fileutils"
require "timeout"
require "bloat_probe"

# The bench and the children print UTF-8 (×, –, µ) whatever the locale; on a machine that
# has none set (a fresh minimal Debian), Ruby would read their output as US-ASCII.
Encoding.default_external = Encoding::UTF_8

module ChildProcess
  LIB = File.expand_path("../lib", __dir__)
  MiB = 1 << 20

  # Runs Ruby code in a fresh process with the given environment (MALLOC_ARENA_MAX,
  # LD_PRELOAD act only at exec) and returns what it printed as JSON on its last line.
  def run_child(code, env = {}, timeout: 60)
    script = "require 'json'; require 'bloat_probe'\n#{code}"
    out, err, status = Open3.capture3(env, "timeout", "--kill-after=5", timeout.to_s, RbConfig.ruby, "-I", LIB, "-e", script)
    assert status.success?, "child failed (#{status}):\n#{err}"
    JSON.parse(out.lines.last, symbolize_names: true)
  end

  def library_path(name)
    Dir["/usr/lib/#{RbConfig::CONFIG["host_cpu"]}-linux-gnu/#{name}", "/usr/lib/*/#{name}"].first
  end
end

# A directory for a test's server log, removed when the whole run ends: a failing
# assertion reads the log first.
def scratch_log(prefix)
  dir = Dir.mktmpdir(prefix)
  Minitest.after_run { FileUtils.rm_rf(dir) }
  File.join(dir, "puma.log")
end

# The processes a bench started, from /proc.
module ProcessTree
  def children_of(parent)
    Dir["/proc/[0-9]*/stat"].filter_map do |path|
      fields = File.read(path).split(") ").last.split
      File.basename(File.dirname(path)).to_i if fields[1].to_i == parent
    rescue Errno::ENOENT, Errno::ESRCH
      nil
    end
  end

  def command_of(pid)
    File.read("/proc/#{pid}/cmdline").tr("\0", " ")
  rescue Errno::ENOENT
    ""
  end
end
