# frozen_string_literal: true

require "fileutils"
require "tmpdir"

# A directory for a test's server log, removed when the whole run ends: a failing
# assertion reads the log first.
module ScratchLog
  def scratch_log(prefix)
    dir = Dir.mktmpdir(prefix)
    Minitest.after_run { FileUtils.rm_rf(dir) }
    File.join(dir, "puma.log")
  end
end
