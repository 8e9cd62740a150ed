# frozen_string_literal: true

require "puma/plugin"
require "bloat_probe"
require "bloat_probe/metrics_server"
require "bloat_probe/retirement"

# `plugin :bloat_probe` in config/puma.rb: a BloatProbe::Reporter in the process that
# serves requests, logging through Puma's log every BLOAT_PROBE_REPORT_INTERVAL seconds
# (default 60). In cluster mode (`workers n`) each worker reports for itself, labelled
# worker=N, and publishes its series so that a scrape of BloatProbe::Metrics on any
# worker returns every live worker's. Works with Puma 5.6 and 6.
#
# Settings, from the environment, checked when Puma starts (a bad one stops the boot,
# naming it):
#   BLOAT_PROBE_REPORT_INTERVAL      seconds between log lines (0.1 to 86400; default 60)
#   BLOAT_PROBE_DIAGNOSIS_INTERVAL   seconds a moment may be reused by a scrape or a view;
#                                    each reads /proc/self/smaps_rollup (1 to 86400; default 60)
#   BLOAT_PROBE_WARMUP               seconds before the trend starts: growth after it is
#                                    growth, not start-up (0 to 604800; default 600)
#   BLOAT_PROBE_GUARD                on, dry-run or off (the default): BloatProbe::Guard keeps
#                                    each worker within BLOAT_PROBE_GUARD_BUDGET (1.5G, 80%
#                                    of the container's limit, or 3x the master's USS),
#                                    checking every BLOAT_PROBE_GUARD_INTERVAL seconds (60)
#                                    and restarting a worker after BLOAT_PROBE_GUARD_STRIKES
#                                    checks over it (3)
#   BLOAT_PROBE_METRICS_PORT         serves /metrics from a listener of its own on this port,
#                                    which answers while every request thread is busy; in
#                                    cluster mode the master answers for every worker
#   BLOAT_PROBE_METRICS_BIND         its address (default 127.0.0.1)
#   BLOAT_PROBE_TRIM_INTERVAL        glibc only: BloatProbe::Trimmer calls malloc_trim(0) this
#                                    often, in seconds (0.01 to 86400; off by default) …
#   BLOAT_PROBE_TRIM_MIN             … only where a trim would return this much (64M)
#   BLOAT_PROBE_TRIAL                cluster mode, glibc: remedies tried side by side on the
#                                    app's own traffic ("arena_max=2,trim"): worker 0 is the
#                                    control, worker 1 takes the first, … (BloatProbe::Trial);
#                                    every series and log line gains remedy="…", and the
#                                    master logs a `bloat_probe trial` line per remedy
#                                    every report interval past the warm-up
#   BLOAT_PROBE_COMPACT_BEFORE_FORK  cluster mode: the master runs BloatProbe.prepare_for_fork
#                                    (Process.warmup, or GC, compaction and a trim) before it
#                                    forks, and logs what its memory was before and after
Puma::Plugin.create do
  def start(launcher)
    setting = BloatProbe::Setting
    interval = setting.seconds("BLOAT_PROBE_REPORT_INTERVAL", range: BloatProbe::Reporter::INTERVALS,
                                                              default: BloatProbe::Reporter::DEFAULT_INTERVAL)
    diagnosis_interval = setting.seconds("BLOAT_PROBE_DIAGNOSIS_INTERVAL",
                                         range: BloatProbe::Recorder::DIAGNOSIS_INTERVALS,
                                         default: BloatProbe::Recorder::DIAGNOSIS_INTERVAL)
    warmup = setting.seconds("BLOAT_PROBE_WARMUP", range: BloatProbe::Recorder::WARMUPS,
                                                   default: BloatProbe::Recorder::WARMUP)
    recorder = BloatProbe::Recorder.new(diagnosis_interval: diagnosis_interval, warmup: warmup)
    # Puma 6 logs through launcher.log_writer, Puma 5.6 through launcher.events.
    puma_log = launcher.respond_to?(:log_writer) ? launcher.log_writer : launcher.events
    log = ->(line) { puma_log.log(line) }
    cluster = launcher.options[:workers].to_i.positive?
    # Checked now, at boot: a bad setting stops Puma, naming it.
    probe = BloatProbe::Probe.new(
      recorder: recorder, cluster: cluster ? BloatProbe::Cluster.for_master : nil,
      guard: BloatProbe::Guard.from_env(restart: restart(cluster, log), log: log, recorder: recorder),
      trimmer: BloatProbe::Trimmer.from_env(recorder: recorder)
    )
    trial = BloatProbe::Trial.from_env(workers: launcher.options[:workers].to_i, trimmer: !probe.trimmer.nil?)
    compact_setting = "BLOAT_PROBE_COMPACT_BEFORE_FORK"
    compact = setting.boolean(compact_setting, default: false)
    if compact && !cluster
      raise BloatProbe::SettingError, "#{compact_setting} needs Puma's cluster mode (workers 1 or more): " \
                                      "single mode never forks"
    end
    BloatProbe.probe = probe
    metrics_server = metrics_server(probe, cluster, interval)

    if cluster
      start_in_workers(launcher, probe, interval, log, trial)
      compact_before_fork(launcher, log) if compact
      report_trial(launcher, probe.cluster, interval, warmup, log) if trial
    else
      # Once the app has booted: a first diagnosis before Rails loads would report a
      # process a tenth of its working size.
      launcher.events.on_booted { probe.start(interval: interval, log: log) }
    end
    # In cluster mode the master, once its workers have booted: a worker forked later
    # inherits the listener but never accepts on it.
    launcher.events.on_booted do
      metrics_server&.start
      log.call("bloat_probe metrics on #{metrics_server.url}") if metrics_server
    end
    launcher.events.on_stopped do
      metrics_server&.stop
      probe.stop
      probe.cluster&.remove
    end
  end

  private

  # The master only forks; each worker starts the probe's threads after it boots (threads
  # do not survive fork). After each fork the master publishes its own series, as the
  # memory its workers started out sharing.
  def start_in_workers(launcher, probe, interval, log, trial)
    launcher.config.configure do |_user, file, _default|
      file.on_worker_boot do |index|
        probe.cluster.worker = index
        probe.guard&.keep_counts_in(probe.cluster)
        probe.take_up(trial.remedy_for(index)) if trial
        probe.start(interval: interval, log: log)
      end
      file.after_worker_fork do
        snapshot = BloatProbe::Metrics::Snapshot.of(probe, probe.recorder.take)
        probe.cluster.publish_master(BloatProbe::Metrics::Families.series(snapshot,
                                                                          labels: BloatProbe::Cluster::MASTER_LABELS))
      end
    end
  end

  # Puma runs before_fork hooks once, in the master, after the app has loaded (preload_app!)
  # and before the first worker is forked.
  def compact_before_fork(launcher, log)
    launcher.config.configure do |_user, file, _default|
      file.before_fork do
        before = BloatProbe.memory(detail: true)
        started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        ran = BloatProbe.prepare_for_fork
        took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
        after = BloatProbe.memory(detail: true)
        mib = BloatProbe::LogLine.method(:mib)
        sizes = { rss_mib: mib.call(before.rss), rss_after_mib: mib.call(after.rss),
                  uss_mib: mib.call(before.uss), uss_after_mib: mib.call(after.uss) }
        log.call(BloatProbe::LogLine.format("before_fork", ran: ran, seconds: took.round(3), **sizes))
      end
    end
  end

  # The master compares the trial's workers with the control, from what they publish.
  def report_trial(launcher, cluster, interval, warmup, log)
    report = nil
    launcher.events.on_booted do
      report = BloatProbe::TrialReport.start(cluster: cluster, interval: interval, warmup: warmup, log: log)
    end
    launcher.events.on_stopped { report&.stop }
  end

  def metrics_server(probe, cluster, interval)
    port = BloatProbe::Setting.integer("BLOAT_PROBE_METRICS_PORT", range: BloatProbe::MetricsServer::PORTS,
                                                                   default: nil)
    return unless port

    bind = ENV.fetch("BLOAT_PROBE_METRICS_BIND", "127.0.0.1")
    metrics = BloatProbe::Metrics.new(probe: probe, own_series: !cluster)
    BloatProbe::MetricsServer.new(metrics, port: port, bind: bind, report_interval: interval)
  end

  # A worker lets its clients go (BloatProbe::Retirement), then stops gracefully on TERM
  # (its requests finish) and the master boots another in its place. A single process has
  # no master to do that: it says so instead.
  def restart(cluster, log)
    if cluster
      BloatProbe::Retirement.install
      return lambda do |_decision|
        BloatProbe::Retirement.begin { Process.kill("TERM", Process.pid) } unless BloatProbe::Retirement.retiring?
        true
      end
    end

    reason = "Puma runs in single mode, where no master replaces a process: run workers 1 or more (cluster " \
             "mode), or let your supervisor restart it (systemd, Kubernetes)"
    lambda do |_decision|
      log.call(BloatProbe::LogLine.format("guard", pid: Process.pid, restart: :skipped, reason: reason))
      false
    end
  end
end
