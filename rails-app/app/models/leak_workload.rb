# frozen_string_literal: true

# Native memory kept for good, as a leak keeps it (a cache without a bound, a class-level
# collection): what a native_growth verdict is there to catch. Bounded all the same by the
# workload routes' process budget, which refuses requests once the process has grown by it.
class LeakWorkload
  KEPT = [] # rubocop:disable Style/MutableConstant -- what a leak is: a collection that only grows
  LOCK = Mutex.new

  # How worst_case_bytes is reckoned, for the budget's message.
  WORST_CASE = "bytes"

  def initialize(bytes:)
    @bytes = bytes
  end

  def worst_case_bytes
    @bytes
  end

  def run
    result = BloatProbe.churn(count: 1, min_size: @bytes, max_size: @bytes, retain: 1.0, window: 0)
    kept = LOCK.synchronize { KEPT << result }.size
    { bytes: result.retained_bytes, kept: kept }
  end

  # Frees every kept block (tests start from a clean process).
  def self.release_all
    LOCK.synchronize { KEPT.each(&:release).clear }
  end
end
