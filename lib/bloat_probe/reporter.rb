# frozen_string_literal: true

module BloatProbe
  # Every `interval` seconds, on a thread of its own: samples the process's memory into
  # the probe's Recorder, logs one logfmt line with the main figures and the verdict,
  # and, in a Puma cluster, publishes this worker's series for the metrics endpoint. A
  # reading that fails is logged in one line and the next tick tries again.
  class Reporter
    include Periodic

    INTERVALS = 0.1..86_400.0
    DEFAULT_INTERVAL = 60

    attr_reader :interval, :probe

    def self.start(**options)
      new(**options).start
    end

    # log: anything with #call(line); Puma's and Sidekiq's loggers are wrapped by their
    # integrations. probe: whose Recorder to sample, and whose Cluster (if any) to publish to.
    def initialize(interval: DEFAULT_INTERVAL, probe: BloatProbe.probe, log: ->(line) { $stdout.puts(line) })
      @interval = BloatProbe.check_number("interval", interval, INTERVALS, unit: " seconds")
      raise TypeError, "log must respond to #call, got #{BloatProbe.excerpt(log)}" unless log.respond_to?(:call)

      @probe = probe
      @log = log
    end

    # One report; what start's thread does each interval.
    def tick
      # The guard's moment of less than half an interval ago is as good as a new one.
      snapshot = Metrics::Snapshot.of(@probe, @probe.recorder.take(reuse_within: @interval / 2))
      @probe.recorder.clock_step!&.then { |stepped| failed(stepped) }
      @probe.cluster&.publish(Metrics::Families.series(snapshot, labels: @probe.labels),
                              history: @probe.recorder.history)
      @log.call(self.class.line(snapshot.diagnosis, snapshot.memory, @probe.labels, top: snapshot.attribution&.first))
    rescue StandardError => e
      failed(e)
    end

    # One log line (LogLine), every figure from one moment.
    # top: the attribution's first entry, the endpoint or job that raised the arenas most.
    def self.line(diagnosis, memory, labels, top: nil)
      mib = LogLine.method(:mib)
      fields = { pid: Process.pid, **labels, verdict: diagnosis.verdict, rss_mib: mib.call(memory.rss),
                 pss_mib: mib.call(diagnosis.pss), private_mib: mib.call(memory.private),
                 shared_mib: mib.call(memory.shared), malloc_in_use_mib: mib.call(diagnosis.malloc_in_use),
                 free_mib: mib.call(diagnosis.free), trimmable_mib: mib.call(diagnosis.trimmable),
                 arenas: diagnosis.arena_count, ruby_heap_mib: mib.call(diagnosis.ruby_heap),
                 in_use_growth_mib_per_hour: mib.call(diagnosis.trend&.in_use_per_hour),
                 allocator: diagnosis.allocator.tr(" ", "-") }
      fields.merge!(top_raiser: top.name, top_raised_mib: mib.call(top.raised_bytes)) if top
      LogLine.format(**fields)
    end

    private

    # One line naming the reading, which is counted.
    def failed(error)
      reading = @probe.reading_errors.count(error)
      @log.call(LogLine.error(nil, error, pid: Process.pid, **(reading ? { reading: reading } : {})))
    end

    def thread_name = "bloat_probe-reporter"

    # A process reports as soon as it starts, then every interval.
    def work_first? = true
  end
end
