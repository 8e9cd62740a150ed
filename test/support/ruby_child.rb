# frozen_string_literal: true

require "json"
require "open3"
require "rbconfig"

# Ruby code run in a fresh process, for what acts only at exec (MALLOC_ARENA_MAX,
# LD_PRELOAD) or must not carry this test process's memory.
module RubyChild
  LIB = File.expand_path("../../lib", __dir__)
  # The workloads' size draw, which rails-app keeps (it is no part of the gem).
  LOG_UNIFORM = File.expand_path("../../rails-app/lib/log_uniform.rb", __dir__)
  MiB = 1 << 20

  # Runs the code with bloat_probe loaded and returns what it printed as JSON on its last
  # line; a child that fails or outlives `timeout` seconds fails the test.
  def run_child(code, env = {}, timeout: 60)
    script = "require 'json'; require 'bloat_probe'; require #{LOG_UNIFORM.dump}\n#{code}"
    out, err, status = Open3.capture3(env, "timeout", "--kill-after=5", timeout.to_s, RbConfig.ruby, "-I", LIB, "-e",
                                      script)
    assert status.success?, "child failed (#{status}):\n#{err}"
    JSON.parse(out.lines.last, symbolize_names: true)
  end

  # An allocator's library as LD_PRELOAD names it, or nil where it is not installed.
  def library_path(name)
    Dir["/usr/lib/#{RbConfig::CONFIG["host_cpu"]}-linux-gnu/#{name}", "/usr/lib/*/#{name}"].first
  end
end
