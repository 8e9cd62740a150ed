# frozen_string_literal: true

# BloatProbe.churn on the request's own thread, so glibc serves it from the arena of this
# Puma thread, as request code is served. A bounded set of results is kept alive, so some
# long-lived native blocks stay scattered through the arenas, as caches' do.
class NativeWorkload
  KEPT_RESULTS = 50
  KEPT = []
  KEPT_LOCK = Mutex.new

  def initialize(count:, sizes:, retain:, window:, seed:)
    @options = { count: count, min_size: sizes.min, max_size: sizes.max, retain: retain, window: window, seed: seed }
  end

  def run
    result = BloatProbe.churn(**@options)
    evicted = KEPT_LOCK.synchronize do
      KEPT << result
      KEPT.shift(KEPT.size - KEPT_RESULTS) if KEPT.size > KEPT_RESULTS
    end
    Array(evicted).each(&:release)
    result.to_h.except(:retained)
  end
end
