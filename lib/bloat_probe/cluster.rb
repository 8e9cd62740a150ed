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
  # after each fork (what the workers started out sharing) and at each scrape it serves.
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
    # A worker's history is shared thinned to this many samples: enough for the dashboard's
    # chart, and cheap to write at every report (the whole of 360 took 2 ms).
    HISTORY_POINTS = 60

    def labels
      @worker.nil? ? {} : { worker: @worker.to_s }
    end

    # One process's latest publication: its worker label ("0", "1", … or "master"), its
    # series and its Recorder's history (the master keeps none).
    Peer = Struct.new(:worker, :pid, :series, :history, keyword_init: true) do
      # The remedy it tries in a trial (Trial), nil otherwise.
      def remedy
        series.first&.dig(1, :remedy)
      end
    end

    # A worker's series and history, once it knows its index.
    def publish(series, history: [])
      write(file_for(@worker), publication(series, history)) unless @worker.nil?
    end

    # The master's series (made with MASTER_LABELS).
    def publish_master(series)
      write(File.join(@dir, "master.json"), publication(series, []))
    end

    # The live processes' publications; but for this process's own where it serves its
    # figures itself (own: false in the master, which serves none, and on the dashboard,
    # which shows every worker as it last reported).
    def peers(own: true)
      Dir.glob(File.join(@dir, "{worker-*,master}.json")).sort.filter_map do |path|
        published = read(path) or next
        pid = Integer(published[:pid])
        next if own && pid == Process.pid

        unless File.exist?("/proc/#{pid}")
          FileUtils.rm_f(path)
          next
        end
        peer(File.basename(path, ".json").delete_prefix("worker-"), pid, published)
      end
    end

    def peer_series(own: true)
      peers(own: own).flat_map(&:series)
    end

    # Counts that must outlive this worker (its Guard's), for the worker Puma boots in its slot.
    def carry(counts)
      write(carried_file, counts) unless @worker.nil?
    end

    # What the slot's earlier workers carried; nothing before this process knows its slot.
    def carried
      (read(carried_file) unless @worker.nil?) || {}
    end

    def remove
      FileUtils.rm_rf(@dir)
    end

    private

    # Samples as arrays in Sample's order, the latest of each stretch of the history.
    def publication(series, history)
      step = history.size.fdiv(HISTORY_POINTS).ceil
      thinned = step > 1 ? history.each_slice(step).map(&:last) : history
      { pid: Process.pid, series: series, history: thinned.map(&:to_a) }
    end

    # Written whole, then renamed over the old file: a scrape never reads half of one.
    def write(path, document)
      File.write("#{path}.#{Process.pid}.tmp", JSON.generate(document))
      File.rename("#{path}.#{Process.pid}.tmp", path)
    rescue SystemCallError => e
      raise ReadingError.new("writing #{path}: #{e.message}", reading: "cluster")
    end

    def carried_file
      File.join(@dir, "carried-#{Integer(@worker)}.json")
    end

    def peer(worker, pid, published)
      Peer.new(worker: worker, pid: pid,
               series: published[:series],
               history: published[:history].map { |values| Sample.new(*values) })
    end

    def file_for(index)
      File.join(@dir, "worker-#{Integer(index)}.json")
    end

    def read(path)
      JSON.parse(File.read(path), symbolize_names: true)
    rescue Errno::ENOENT, JSON::ParserError
      nil
    end
  end
end
