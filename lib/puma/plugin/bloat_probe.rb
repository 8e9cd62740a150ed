# frozen_string_literal: true

require "puma/plugin"
require "bloat_probe"

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
#                                    each reads /proc/self/smaps (1 to 86400; default 60)
#   BLOAT_PROBE_WARMUP               seconds before the trend starts: growth after it is
#                                    growth, not start-up (0 to 604800; default 600)
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
    probe = BloatProbe.probe
    probe.recorder = BloatProbe::Recorder.new(diagnosis_interval: diagnosis_interval, warmup: warmup)
    # Puma 6 logs through launcher.log_writer, Puma 5.6 through launcher.events.
    puma_log = launcher.respond_to?(:log_writer) ? launcher.log_writer : launcher.events
    log = ->(line) { puma_log.log(line) }

    if launcher.options[:workers].to_i.positive?
      start_in_workers(launcher, probe, interval, log)
    else
      # Once the app has booted: a first diagnosis before Rails loads would report a
      # process a tenth of its working size.
      launcher.events.on_booted do
        probe.reporter = BloatProbe::Reporter.start(interval: interval, probe: probe, log: log)
      end
    end
    launcher.events.on_stopped do
      probe.reporter&.stop
      probe.cluster&.remove
    end
  end

  private

  # The master only forks; each worker starts its own Reporter after it boots (threads do
  # not survive fork).
  def start_in_workers(launcher, probe, interval, log)
    probe.cluster = BloatProbe::Cluster.for_master
    launcher.config.configure do |_user, file, _default|
      file.on_worker_boot do |index|
        probe.cluster.worker = index
        probe.reporter = BloatProbe::Reporter.start(interval: interval, probe: probe, log: log)
      end
    end
  end
end
