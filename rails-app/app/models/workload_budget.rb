# frozen_string_literal: true

# What the workload routes may cost the process. A request's worst case is reckoned from
# its parameters before it allocates: over the per-request budget, it is refused (422,
# naming them). The process budget bounds what the routes may add to the process's RSS
# since they first ran: the RSS grown so far, plus what the requests running now may
# still take, plus this request's worst case. Past it the request gets 503 with
# Retry-After. RSS, not the bytes requests hold, because freed memory stays in glibc's
# arenas (what this lab shows): a process at its budget stays there until it shrinks.
class WorkloadBudget
  OverRequestBudget = Class.new(StandardError)
  Exhausted = Class.new(StandardError)

  LOCK = Mutex.new
  @reserved = 0
  @baseline = nil

  class << self
    def reserved
      LOCK.synchronize { @reserved }
    end

    # The RSS that growth is counted from: set when the routes first run, or now.
    def baseline!
      LOCK.synchronize { @baseline = BloatProbe.memory.rss }
    end

    # what: how the bytes were reckoned, for the message ("count × max_size").
    def reserve(bytes, what:)
      settings = Rails.configuration.x.bloat_probe
      if bytes > settings.workload_request_budget
        raise OverRequestBudget, "#{what} = #{bytes} bytes (#{human(bytes)}) is over the per-request budget of " \
                                 "#{human(settings.workload_request_budget)} (BLOAT_PROBE_WORKLOAD_REQUEST_BUDGET)"
      end
      take(bytes, settings.workload_budget)
      begin
        yield
      ensure
        LOCK.synchronize { @reserved -= bytes }
      end
    end

    private

    def take(bytes, budget)
      LOCK.synchronize do
        rss = BloatProbe.memory.rss
        @baseline ||= rss
        grown = [rss - @baseline, 0].max
        if grown + @reserved + bytes > budget
          raise Exhausted, "the process has grown #{human(grown)} and running requests may take #{human(@reserved)} " \
                           "more, of a #{human(budget)} budget (BLOAT_PROBE_WORKLOAD_BUDGET); this request needs " \
                           "#{human(bytes)}"
        end
        @reserved += bytes
      end
    end

    def human(bytes)
      BloatProbe::Format.bytes(bytes)
    end
  end
end
