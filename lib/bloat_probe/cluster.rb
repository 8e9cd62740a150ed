# frozen_string_literal: true

require "json"
require "fileutils"
require "tmpdir"

module BloatProbe
  # The workers of one Puma cluster share a directory: each worker's Reporter writes its
  # latest series there as worker-N.json, and the worker that answers a scrape adds the
  # other live workers' series to its own. A file whose process is gone is left out and
  # removed, so a dead worker's series disappear; the worker Puma boots in its place
  # writes under the same index.
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

    def labels
      @worker.nil? ? {} : { worker: @worker.to_s }
    end

    # Written whole, then renamed over the old file: a scrape never reads half of one.
    def publish(series)
      return if @worker.nil?

      path = file_for(@worker)
      File.write("#{path}.#{Process.pid}.tmp", JSON.generate(pid: Process.pid, series: series))
      File.rename("#{path}.#{Process.pid}.tmp", path)
    end

    # The other live workers' series, as they last published them.
    def peer_series
      Dir.glob(File.join(@dir, "worker-*.json")).flat_map do |path|
        published = read(path) or next []
        next [] if published["pid"] == Process.pid

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
