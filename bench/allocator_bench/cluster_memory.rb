# frozen_string_literal: true

require "bloat_probe"

module AllocatorBench
  # A Puma cluster's memory at one moment, read from outside: the master and each of its
  # workers (BloatProbe.memory_of). What the container is charged for them is the sum of
  # their PSS; what each worker costs alone is its private memory; the shared fraction is
  # how much of the workers' resident memory is still shared, mostly the master's pages
  # that no worker has written since fork.
  ClusterMemory = Struct.new(:master, :workers)

  class ClusterMemory
    # The master's children as the kernel lists them; Puma forks its workers from the
    # master's main thread. A worker that exits meanwhile is left out.
    def self.read(master_pid)
      children = File.read("/proc/#{master_pid}/task/#{master_pid}/children").split.map(&:to_i)
      workers = children.filter_map do |pid|
        BloatProbe.memory_of(pid)
      rescue BloatProbe::Error
        nil
      end
      new(BloatProbe.memory_of(master_pid), workers)
    end

    def pss_sum
      [master, *workers].sum(&:pss)
    end

    def worker_private
      workers.map(&:private)
    end

    def mean_worker_private
      worker_private.sum / workers.size if workers.any?
    end

    def shared_fraction
      resident = workers.sum(&:rss)
      workers.sum(&:shared).fdiv(resident) if resident.positive?
    end
  end
end
