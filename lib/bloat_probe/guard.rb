# frozen_string_literal: true

module BloatProbe
  # Keeps a process within a memory budget, and acts by the verdict. Each check measures
  # the process (its USS, or the container's usage where the budget is a share of the
  # cgroup limit). Under budget, nothing. Over it:
  # - with memory the allocator holds free (arena_fragmentation, allocator_retained), it
  #   trims (glibc) or purges (jemalloc), then measures again: under budget, done;
  # - still over budget for `strikes` checks in a row, it restarts the process gracefully
  #   (a Puma worker finishes its requests and the master replaces it; Sidekiq goes quiet,
  #   then stops within its timeout for its supervisor to start it again); where nothing
  #   can restart it (Puma in single mode) it says so instead.
  # In dry-run it decides the same and does nothing. Every decision is one logfmt line,
  # counted in the metrics, and kept (the last HISTORY) for the dashboard; in dry-run a
  # decision that repeats the last one (past its strikes, every check would say restart
  # again) is neither logged, counted nor kept. Guard::Budget says what counts against the
  # budget; Guard::Remedies acts.
  class Guard
    include Periodic

    MODES = %w[on dry-run off].freeze
    STRIKES = 1..100
    DEFAULT_STRIKES = 3
    INTERVALS = 1.0..86_400.0
    DEFAULT_INTERVAL = 60
    HISTORY = 50

    # One check's outcome, as logged.
    Decision = Struct.new(:time, :action, :reason, :verdict, :before, :after, :budget, :strikes, :dry_run,
                          keyword_init: true)

    # The guard the environment asks for, or nil when it is off (the default).
    # restart: what a restart does here (see #initialize).
    def self.from_env(restart:, log:, env: ENV, recorder: BloatProbe.probe.recorder)
      mode = Setting.choice("BLOAT_PROBE_GUARD", MODES, default: "off", env: env)
      return if mode == "off"

      budget = env["BLOAT_PROBE_GUARD_BUDGET"].to_s.strip
      raise SettingError, "BLOAT_PROBE_GUARD=#{mode} needs BLOAT_PROBE_GUARD_BUDGET (1.5G, 80% or 3x)" if budget.empty?

      new(budget: Budget.parse(budget), mode: mode, recorder: recorder, restart: restart, log: log,
          strikes: Setting.integer("BLOAT_PROBE_GUARD_STRIKES", range: STRIKES, default: DEFAULT_STRIKES, env: env),
          interval: Setting.seconds("BLOAT_PROBE_GUARD_INTERVAL", range: INTERVALS, default: DEFAULT_INTERVAL,
                                                                  env: env))
    end

    attr_reader :budget, :mode, :strikes, :interval, :actions, :released_bytes

    # restart: a callable given the decision, which restarts the process gracefully and
    # returns true, or returns false where it cannot (Puma in single mode).
    def initialize(budget:, restart:, mode: "on", strikes: DEFAULT_STRIKES, interval: DEFAULT_INTERVAL,
                   recorder: BloatProbe.probe.recorder, log: ->(line) { $stdout.puts(line) })
      @budget = budget.is_a?(Budget) ? budget : Budget.parse(budget, name: "budget")
      unless MODES.include?(mode)
        raise ArgumentError, "mode must be one of #{MODES.join(", ")}, got #{BloatProbe.excerpt(mode)}"
      end

      @remedies = Remedies.new(restart: restart, dry_run: mode == "dry-run")
      @mode = mode
      @strikes = BloatProbe.check_number("strikes", strikes, STRIKES, Integer)
      @interval = BloatProbe.check_number("interval", interval, INTERVALS, unit: " seconds")
      @recorder = recorder
      @log = log
      @over = 0
      @actions = Hash.new(0)
      @released_bytes = 0
      @decisions = []
      @lock = Mutex.new
    end

    # One check: measure, decide, act (unless dry-run), log. Returns the Decision. A
    # reading that fails is logged, and nothing is done on it.
    # One moment is read before acting; after a trim, only what the budget counts.
    def tick
      moment = @recorder.take(record: false)
      limit = @budget.bytes(moment.cgroup)
      before = @budget.used_in(moment)
      return decide(:none, "under_budget", nil, before, before, limit) if before <= limit

      @over += 1
      verdict = moment.diagnosis.verdict
      after = before
      if moment.diagnosis.freeable? && (freed = @remedies.give_back)
        after = @budget.used_now
        @released_bytes += [before - after, 0].max unless dry_run?
        if after <= limit
          @over = 0
          return decide(freed, "over_budget", verdict, before, after, limit)
        end
      end
      return decide(freed || :none, "over_budget", verdict, before, after, limit) if @over < @strikes

      decide(:restart, "over_budget_#{@over}_checks", verdict, before, after, limit)
    rescue StandardError => e
      @log.call(LogLine.error("guard", e, pid: Process.pid))
      nil
    end

    # Every action for every verdict, 0 until counted: a rate() has a start from boot.
    def action_counts
      @lock.synchronize { Remedies::ACTIONS.product(Diagnosis::VERDICTS).to_h { |key| [key, @actions[key]] } }
    end

    # Keeps the counts in `ledger` (a Puma worker's slot in its Cluster) from now on, and
    # takes up what the process that held the slot before had counted, so that a restart
    # is counted where the count outlives the restarted worker.
    def keep_counts_in(ledger)
      carried = ledger.carried
      @lock.synchronize do
        carried.fetch(:actions, []).each { |action, verdict, count| @actions[[action.to_sym, verdict.to_sym]] += count }
        @released_bytes += carried.fetch(:released_bytes, 0)
        @ledger = ledger
      end
    end

    def dry_run?
      @mode == "dry-run"
    end

    # The last decisions, oldest first.
    def decisions
      @lock.synchronize { @decisions.dup }
    end

    private

    def thread_name = "bloat_probe-guard"

    def work_first? = false

    def decide(action, reason, verdict, before, after, limit)
      decision = Decision.new(time: Time.now.to_f, action: action, reason: reason, verdict: verdict, before: before,
                              after: after, budget: limit, strikes: @over, dry_run: dry_run?)
      # In dry-run nothing changes between checks past the strikes: the same decision once.
      repeated = dry_run? && @last_decided == [action, verdict]
      @last_decided = [action, verdict]
      return decision if repeated

      counts = @lock.synchronize do
        @actions[[action, verdict]] += 1 unless action == :none
        @decisions << decision
        @decisions.shift if @decisions.size > HISTORY
        carried_counts
      end
      # Counted, and kept where the count outlives this process, before a restart ends it.
      carry(counts) unless action == :none
      restarted = action == :restart ? @remedies.restart(decision) : nil
      @log.call(line(decision, restarted)) unless action == :none && @over.zero? && reason == "under_budget"
      decision
    end

    # A count that cannot be kept is logged; the decision (a restart too) goes on.
    def carry(counts)
      @ledger&.carry(counts)
    rescue ReadingError => e
      @log.call(LogLine.error("guard", e, pid: Process.pid, reading: e.reading))
    end

    def carried_counts
      { actions: @actions.map { |(action, verdict), count| [action, verdict, count] }, released_bytes: @released_bytes }
    end

    def line(decision, restarted)
      mib = LogLine.method(:mib)
      fields = { pid: Process.pid, action: decision.action, reason: decision.reason, verdict: decision.verdict,
                 before_mib: mib.call(decision.before), after_mib: mib.call(decision.after),
                 budget_mib: mib.call(decision.budget), strikes: "#{decision.strikes}/#{@strikes}", mode: @mode }
      fields[:restarted] = restarted unless restarted.nil?
      LogLine.format("guard", **fields)
    end
  end
end
