# frozen_string_literal: true

module BloatProbe
  # Where the memory went: for each endpoint or job, how often it ran, and how often and by
  # how much it raised memory while it ran (its arena's high-water mark under glibc, what it
  # left allocated under a preloaded jemalloc; only the calls under another allocator).
  # Memory stays bounded: LIMIT names, the smallest folded into "other" when a new one
  # comes. The figures are kept natively (the core's attribution module tells how a rise is
  # shared among calls that overlap on one arena), so that a call's bookkeeping is one
  # native call at its start and one at its end: as a dozen Ruby steps it cost 35-50 µs a
  # request, each step a cache miss after a whole request.
  class Attribution
    LIMIT = Native::AttributionLedger::LIMIT
    LIMITS = 1..10_000
    OTHER = Native::AttributionLedger::OTHER
    # Longer names are cut here (a label, a log field).
    NAME_LENGTH = Native::AttributionLedger::NAME_LENGTH
    # One call in this many times its own CPU: a thread's CPU clock is a system call (1 to 3
    # µs each, four a call), which timing every call would add to what it measures.
    OVERHEAD_SAMPLE = 16

    # One name's figures: calls, high-water raises and the bytes they added. (Not the RSS
    # growth while a call ran: calls in flight together each saw all of it, so the growth
    # per name added up to many times the process's.)
    Entry = Reading.define(:name, :calls, :raises, :raised_bytes, bytes: %i[raised_bytes])

    # overhead_sample: one call in this many times its own CPU (1: every call).
    def initialize(limit: LIMIT, overhead_sample: OVERHEAD_SAMPLE)
      @ledger = Native::AttributionLedger.new(BloatProbe.check_number("limit", limit, LIMITS, Integer))
      @overhead_sample = BloatProbe.check_number("overhead_sample", overhead_sample, 1..1_000_000, Integer)
    end

    # Runs the block as one call of `name` and records what it did; returns what the block
    # returned. A call that raises is recorded too. `name`: a String (or what gives one with
    # to_s), or a Rack env, named by its route once the app has run (Middleware.name_of).
    def measure(name)
      name = name.to_s unless name.is_a?(Hash)
      timed = rand(@overhead_sample).zero?
      cpu = thread_cpu if timed
      token = @ledger.begin
      own = thread_cpu - cpu if timed
      yield
    ensure
      if token
        cpu = thread_cpu if timed
        @ledger.end(token, name)
        @ledger.count_own(own + thread_cpu - cpu) if timed
      end
    end

    # The calls whose own CPU was timed (one in overhead_sample, at random), and the CPU
    # seconds their measuring took on their threads, the clock readings for it included:
    # what the attribution costs a request, on average, is the one over the other.
    def overhead
      @ledger.overhead
    end

    # How long the calls took, all names together (a frozen copy).
    def durations
      Durations.new(*@ledger.durations).freeze
    end

    # Every name's entry, the largest high-water raises first.
    def entries
      @ledger.entries.map { |fields| Entry.new(*fields) }
    end

    # The threads last seen running a call, with the arena each allocated from:
    # [{ thread:, arena:, name:, seen_at: }], live threads only.
    def thread_arenas
      threads = Thread.list.to_h { |thread| [thread.native_thread_id, thread] }
      @ledger.threads.filter_map do |thread_id, arena, name, seen_at|
        thread = threads[thread_id] or next
        { thread: thread.name || thread.inspect, arena: arena, name: name, seen_at: seen_at }
      end
    end

    private

    def thread_cpu
      Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)
    end

    # A Rack middleware that measures each request under its route's name: Rails's
    # "controller#action", Sinatra's route, else the method and the path's first segment.
    #
    #   # config/application.rb
    #   config.middleware.insert(0, BloatProbe::Attribution::Middleware)
    class Middleware
      # attribution: where to record; by default the installed probe's, looked up at each
      # request (`rails server` builds the app before Puma's plugin installs its probe).
      def initialize(app, attribution = nil)
        @app = app
        @attribution = attribution
      end

      def call(env)
        (@attribution || BloatProbe.probe.attribution).measure(env) { @app.call(env) }
      end

      # The name a request is recorded under, read natively once the app has run.
      def self.name_of(env)
        Native::AttributionLedger.route_name(env)
      end
    end
  end
end
