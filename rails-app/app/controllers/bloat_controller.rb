# frozen_string_literal: true

# The dashboard: what glibc's arenas hold in this process. Routed only when enabled
# (config/routes.rb), and answering loopback clients only unless remote access is allowed.
class BloatController < ApplicationController
  before_action :require_local_client

  # GET /bloat?refresh=2: the page reloads itself every `refresh` seconds; 0 holds it still.
  def show
    @refresh = query_params.integer(:refresh, default: 2, range: 0..3600)
    # Viewing changes nothing: the chart is the Reporter's history (config/puma.rb).
    recorder = BloatProbe.probe.recorder
    @stats, = recorder.sample(record: false)
    @memory = BloatProbe.memory(detail: true)
    @history = recorder.history
    @diagnosis = recorder.diagnosis
  end

  def stats
    render json: {
      # Which process answered (in cluster mode, WEB_CONCURRENCY, each worker has its own),
      # and on what Ruby: YJIT's code is memory of its own.
      process: { pid: Process.pid, worker: Rails.configuration.x.bloat_probe.worker_index, ruby: RUBY_VERSION,
                 yjit: defined?(RubyVM::YJIT) ? RubyVM::YJIT.enabled? : false },
      arena_stats: BloatProbe.arena_stats.to_h,
      memory: BloatProbe.memory(detail: true).to_h,
      diagnosis: BloatProbe.diagnose.to_h,
      trimmer: BloatProbe.probe.trimmer&.to_h,
      gc: GC.stat.slice(:count, :minor_gc_count, :major_gc_count, :heap_live_slots, :heap_free_slots,
                        :total_allocated_objects, :malloc_increase_bytes, :oldmalloc_increase_bytes)
    }
  end

  private

  def require_local_client
    head :forbidden unless LoopbackOnly.allows?(request.remote_addr)
  end
end
