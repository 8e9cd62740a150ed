# frozen_string_literal: true

require_relative "clock"
require "etc"
require "json"
require "net/http"

module Soak
  # Every second, what the kernel says of each process of the soak: the Puma master, its
  # workers as they come and go, and Sidekiq: RSS, threads, open file descriptors, and the
  # CPU time of the probe's reporter thread. Every FOOTPRINT_EVERY seconds, what each Puma
  # worker says of the probe's own footprint (/bloat/stats?footprint=1).
  class Sampler
    include Clock

    EVERY = 1.0
    REPORTER_COMM = "bloat_probe-rep" # the thread's name as the kernel keeps it: 15 bytes
    CLOCK_TICKS = Etc.sysconf(Etc::SC_CLK_TCK)
    PAGE_SIZE = Etc.sysconf(Etc::SC_PAGESIZE)

    attr_reader :samples, :footprints

    def initialize(master:, sidekiq:, port:, started:, deadline:, footprint_every:)
      @master = master
      @sidekiq = sidekiq
      @port = port
      @started = started
      @deadline = deadline
      @footprint_every = footprint_every
      @samples = []
      @footprints = []
    end

    def start
      @thread = Thread.new do
        next_footprint = monotonic
        while monotonic < @deadline
          sample
          if monotonic >= next_footprint
            footprints_now
            next_footprint += @footprint_every
          end
          sleep EVERY
        end
      end
      self
    end

    def join
      @thread.join
    end

    private

    def sample
      t = elapsed
      { "master" => [@master], "worker" => children(@master), "sidekiq" => [@sidekiq] }.each do |role, pids|
        pids.each do |pid|
          reading = process(pid)
          @samples << { t: t, role: role, pid: pid, **reading } if reading
        end
      end
    end

    # The pids the process forked (Puma's workers), from every thread's children list.
    def children(pid)
      Dir["/proc/#{pid}/task/*/children"].flat_map { |path| File.read(path).split.map(&:to_i) }.uniq
    rescue SystemCallError
      []
    end

    def process(pid)
      rss = File.read("/proc/#{pid}/statm").split[1].to_i * PAGE_SIZE
      tasks = Dir["/proc/#{pid}/task/*"]
      { rss: rss, threads: tasks.size, fds: Dir.children("/proc/#{pid}/fd").size,
        reporter_cpu: reporter_cpu(tasks) }
    rescue SystemCallError
      nil # the process ended between two readings
    end

    # utime + stime of the thread named as the reporter, in seconds; nil where it has none.
    def reporter_cpu(tasks)
      task = tasks.find { |dir| File.read("#{dir}/comm").chomp == REPORTER_COMM }
      return unless task

      # Fields 14 and 15 (utime, stime) follow the command name, which may hold spaces.
      fields = File.read("#{task}/stat").split(") ", 2).last.split
      (fields[11].to_i + fields[12].to_i).fdiv(CLOCK_TICKS)
    rescue SystemCallError
      nil
    end

    # Each worker's footprint: asked on new connections until every live worker has
    # answered (the kernel spreads them), at most 20 times.
    def footprints_now
      t = elapsed
      pending = children(@master)
      20.times do
        break if pending.empty?

        document = JSON.parse(Net::HTTP.get(URI("http://127.0.0.1:#{@port}/bloat/stats?footprint=1")),
                              symbolize_names: true)
        pid = document.dig(:process, :pid)
        next unless pending.delete(pid)

        @footprints << { t: t, pid: pid, worker: document.dig(:process, :worker), **document.fetch(:footprint) }
      rescue StandardError
        nil # a worker retiring meanwhile: the next round asks again
      end
    end

    def elapsed
      (monotonic - @started).round(2)
    end
  end
end
