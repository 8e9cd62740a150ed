# frozen_string_literal: true

# The processes a bench or a server started, from /proc.
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
