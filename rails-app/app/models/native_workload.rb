# frozen_string_literal: true

# BloatProbe.churn on the request's own thread, so glibc serves it from the arena of this
# Puma thread, as request code is served. A bounded set of results is kept alive, so some
# long-lived native blocks stay scattered through the arenas, as caches' do.
class NativeWorkload
  KEPT_RESULTS = 50
  KEPT_BYTES = 64 << 20
  KEPT = BoundedCache.new(entries: KEPT_RESULTS, bytes: KEPT_BYTES, &:retained_bytes)

  # How worst_case_bytes is reckoned (by the gem), for the budget's message.
  WORST_CASE = "(min(window, count) + count × retain) × max_size"

  def initialize(count:, sizes:, retain:, window:, seed:)
    @options = { count: count, min_size: sizes.min, max_size: sizes.max, retain: retain, window: window, seed: seed }
  end

  # The most this request can hold at once, as the gem reckons a churn call's.
  def worst_case_bytes
    BloatProbe.churn_worst_case_bytes(**@options)
  end

  def run
    result = BloatProbe.churn(**@options)
    figures = result.to_h.except(:retained)
    # A result bigger than the whole allowance is released at once.
    KEPT.push([result]).each(&:release)
    figures
  end
end
