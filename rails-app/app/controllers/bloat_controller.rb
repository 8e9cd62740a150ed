# frozen_string_literal: true

# The dashboard: what glibc's arenas hold in this process. Routed only when enabled
# (config/routes.rb), and answering loopback clients only unless remote access is allowed.
class BloatController < ApplicationController
  before_action :require_local_client

  # GET /bloat?refresh=2: the page reloads itself every `refresh` seconds; 0 holds it still.
  def show
    @refresh = query_params.integer(:refresh, default: 2, range: 0..3600)
    # One sample for the whole page: the verdict is the diagnosis of the very figures the
    # table and the arenas show. Viewing records nothing: the chart is the Reporter's
    # history (config/puma.rb).
    recorder = BloatProbe.probe.recorder
    moment = recorder.take(record: false)
    @stats = moment.stats
    @memory = moment.memory
    @diagnosis = moment.diagnosis
    @history = recorder.history
    @attribution = BloatProbe.attribution
    @guard = BloatProbe.probe.guard
    cluster_figures(BloatProbe.probe.cluster)
  end

  # GET /bloat/stats?footprint=1 adds the probe's own footprint (a full GC and a heap walk).
  def stats
    render json: StatsDocument.take(footprint: query_params.integer(:footprint, default: 0, range: 0..1) == 1)
  end

  private

  # In a Puma cluster: every process as it last reported (this worker too, so that all rows
  # are alike), its figures, and a trial's comparison of each remedy with the control.
  def cluster_figures(cluster)
    @peers = cluster&.peers(own: false) || []
    series = @peers.flat_map(&:series)
    @workers = BloatProbe::ClusterFigures.by_worker(series)
    @trial = BloatProbe::TrialReport.comparisons(series)
  end

  def require_local_client
    head :forbidden unless LoopbackOnly.allows?(request.remote_addr)
  end
end
