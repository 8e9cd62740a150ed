# frozen_string_literal: true

require "json"
require "fileutils"
require "tmpdir"

module BloatProbe
  # The workers of one Puma cluster share a directory: each worker's Reporter writes its
  # latest series there as worker-N.json, and the worker that answers a scrape adds the
  # other live workers' series to its own. A file whose process is gone is left out and
  # removed, so a dead worker's series disappear; the worker Puma boots in its place
  # writes under the same index. The master writes its own, labelled worker="master",
  # as it is after each fork: what the workers started out sharing.
  class Cluster
    attr_reader :dir
    attr_accessor :worker

    # Made by the master before it forks; named after it, so two clusters on one machine
    # never mix.
    def self.for_master(pid = Process.pid)
      new(File.join(Dir.tmpdir, "bloat_probe-puma-#{pid}"))
    end

    def initialize(dir)
      @dir = dir
      @worker = nil
      FileUtils.mkdir_p(dir, mode: 0o700)
    end

    MASTER_LABELS = { worker: "master" }.freeze

    def labels
      @worker.nil? ? {} : { worker: @worker.to_s }
    end

    # A worker's series, once it knows its index.
    def publish(series)
      write(file_for(@worker), series) unless @worker.nil?
    end

    # The master's series (made with MASTER_LABELS).
    def publish_master(series)
      write(File.join(@dir, "master.json"), series)
    end

    # The live processes' series, as they last published them; but for this process's
    # own where it serves them itself (own: false in the master, which serves none).
    def peer_series(own: true)
      Dir.glob(File.join(@dir, "{worker-*,master}.json")).flat_map do |path|
        published = read(path) or next []
        next [] if own && published["pid"] == Process.pid

        unless File.exist?("/proc/#{Integer(published["pid"])}")
          FileUtils.rm_f(path)
          next []
        end
        published["series"].map { |name, labels, value| [name, labels.transform_keys(&:to_sym), value] }
      end
    end

    def remove
      FileUtils.rm_rf(@dir)
    end

    private

    # Written whole, then renamed over the old file: a scrape never reads half of one.
    def write(path, series)
      File.write("#{path}.#{Process.pid}.tmp", JSON.generate(pid: Process.pid, series: series))
      File.rename("#{path}.#{Process.pid}.tmp", path)
    end

    def file_for(index)
      File.join(@dir, "worker-#{Integer(index)}.json")
    end

    def read(path)
      JSON.parse(File.read(path))
    rescue Errno::ENOENT, JSON::ParserError
      nil
    end
  end
end
