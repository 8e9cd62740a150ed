# frozen_string_literal: true

module BloatProbe
  # A Rack app that serves this process's memory in Prometheus's text exposition format
  # (version 0.0.4). Mount it where your monitoring scrapes:
  #
  #   # config/routes.rb
  #   mount BloatProbe::Metrics.new => "/bloat/metrics"
  #
  # Every figure of a scrape comes from one moment of the Recorder: the Reporter's latest,
  # or, where that is older than diagnosis_interval seconds, a fresh one (it reads
  # /proc/self/smaps_rollup, which costs milliseconds in a large process). In a Puma cluster the
  # scrape also returns every other live worker's series, as each worker's Reporter
  # last published them, labelled worker="N", and the master's, labelled worker="master",
  # which the master reads afresh for each scrape it serves (and publishes for the workers'
  # dashboards).
  class Metrics
    # probe: whose Recorder, Trimmer and Cluster to read; by default the installed one
    # (BloatProbe.probe), looked up at each scrape: a route is built before Puma's plugin
    # installs its probe. own_series: false serves only the cluster's workers' series, as
    # a Puma master that serves no request of its own does.
    def initialize(probe: nil, own_series: true)
      @probe = probe
      @own_series = own_series
    end

    def call(env)
      unless %w[GET HEAD].include?(env["REQUEST_METHOD"])
        return [405, { "content-type" => "text/plain", "allow" => "GET, HEAD" }, ["GET only\n"]]
      end

      probe = @probe || BloatProbe.probe
      series = @own_series ? Families.series(Snapshot.of(probe), labels: probe.labels) : []
      if probe.cluster
        unless @own_series
          probe.cluster.publish_master(Families.series(Snapshot.of(probe), labels: Cluster::MASTER_LABELS))
        end
        series.concat(probe.cluster.peer_series(own: @own_series))
      end
      body = Exposition.render(series)
      [200, { "content-type" => Exposition::CONTENT_TYPE, "content-length" => body.bytesize.to_s },
       [env["REQUEST_METHOD"] == "HEAD" ? "" : body]]
    end
  end
end
