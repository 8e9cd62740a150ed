# frozen_string_literal: true

module BloatProbe
  # Where the memory went: for each endpoint or job, how often it ran, and how often and by
  # how much it raised memory while it ran. Under glibc that is the high-water mark of the
  # arena it ran on: an arena's resident size is the high-water mark of what its threads
  # held at once, so the names that raise the marks are the ones that set RSS. Under a
  # preloaded jemalloc it is what the call left allocated, from its thread's own counters
  # of bytes allocated and freed. Under tcmalloc or mimalloc only the calls are counted.
  # Memory stays bounded: LIMIT names, the smallest folded into "other" when a new one
  # comes.
  #
  # Threads may share an arena (25 Puma threads, 16 arenas), so calls overlap on one. Each
  # call's start and end reads its arena's mark; a rise between two such readings is shared
  # among the calls in flight on that arena then, by the minor page faults each one's
  # thread made meanwhile: the thread that allocated past what the arena held is the one
  # that touched the new pages. A rise while no call was in flight is nobody's.
  class Attribution
    LIMIT = 50
    OTHER = "other"
    # Longer names are cut here (a label, a log field).
    NAME_LENGTH = 120
    # Threads remembered at most; finished ones are dropped first.
    THREADS = 1024
    # One call in this many times its own CPU: a thread's CPU clock is a system call (1 to 3
    # µs each, four a call), which timing every call would add to what it measures.
    OVERHEAD_SAMPLE = 16

    # A call in flight on an arena: its thread's kernel id, that thread's minor faults when
    # last read, and the bytes of the arena's rises shared to it so far.
    Call = Struct.new(:thread_id, :faults, :share)
    # What a call is measured against under jemalloc: its thread's running totals.
    Allocation = Struct.new(:allocated, :deallocated)
    NO_MARK = [].freeze

    # One name's figures: calls, high-water raises and the bytes they added. (Not the RSS
    # growth while a call ran: calls in flight together each saw all of it, so the growth
    # per name added up to many times the process's.)
    Entry = Reading.define(:name, :calls, :raises, :raised_bytes, bytes: %i[raised_bytes])
    # An entry's running figures, added to under the lock; Entry is their frozen copy.
    Tally = Struct.new(:calls, :raises, :raised_bytes) do
      def self.zero
        new(*Array.new(members.size, 0))
      end

      def add(other)
        members.each { |field| self[field] += other[field] }
      end

      # One call that raised the mark by `raised` bytes (0: not at all), in place: a call
      # allocates as little as it can, since what it allocates may start a GC on its thread.
      def count(raised)
        self.calls += 1
        return unless raised.positive?

        self.raises += 1
        self.raised_bytes += raised
      end
    end

    # overhead_sample: one call in this many times its own CPU (1: every call).
    def initialize(limit: LIMIT, overhead_sample: OVERHEAD_SAMPLE)
      @limit = BloatProbe.check_number("limit", limit, 1..10_000, Integer)
      @overhead_sample = BloatProbe.check_number("overhead_sample", overhead_sample, 1..1_000_000, Integer)
      @entries = {}
      @threads = {}
      @seen = {} # arena id => its high-water mark at the last reading
      @in_flight = {} # arena id => [Call]
      @durations = Durations.new
      @own_calls = 0
      @own_cpu = 0.0
      @lock = Mutex.new
    end

    # Runs the block as one call of `name` (a String, or a callable that gives it once the
    # block has run: a Rails route is known only then) and records what it did; returns
    # what the block returned. A call that raises is recorded too.
    def measure(name)
      timed = rand(@overhead_sample).zero?
      cpu = thread_cpu if timed
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      before = mark
      call = start(before)
      own = thread_cpu - cpu if timed
      yield
    ensure
      if before
        took = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
        cpu = thread_cpu if timed
        record(name.respond_to?(:call) ? name.call : name, before, mark, call, took)
        count_own(own + thread_cpu - cpu) if timed
      end
    end

    # The calls whose own CPU was timed (one in overhead_sample, at random), and the CPU
    # seconds their measuring took on their threads, the clock readings for it included:
    # what the attribution costs a request, on average, is the one over the other.
    def overhead
      @lock.synchronize { [@own_calls, @own_cpu] }
    end

    # How long the calls took, all names together (a frozen copy).
    def durations
      @lock.synchronize { @durations.copy }
    end

    # Every name's entry, the largest high-water raises first.
    def entries
      @lock.synchronize { @entries.map { |name, tally| Entry.new(name, *tally.to_a) } }
           .sort_by { |entry| [-entry.raised_bytes, -entry.calls, entry.name] }
    end

    # The threads last seen running a call, with the arena each allocated from:
    # [{ thread:, arena:, name:, seen_at: }], live threads only.
    def thread_arenas
      @lock.synchronize do
        @threads.select! { |thread, _| thread.alive? }
        @threads.map do |thread, (arena, name, at)|
          { thread: thread.name || thread.inspect, arena: arena, name: name, seen_at: at }
        end
      end
    end

    private

    def thread_cpu
      Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)
    end

    def count_own(seconds)
      @lock.synchronize do
        @own_calls += 1
        @own_cpu += seconds
      end
    end

    # [arena index, arena id, its high-water mark] under glibc; the thread's Allocation
    # under jemalloc; empty where neither can be read (the call is counted all the same).
    def mark
      arena = Native.thread_arena_mark and return arena
      allocated, deallocated = Native.thread_allocation
      allocated ? Allocation.new(allocated, deallocated) : NO_MARK
    end

    def start(before)
      return if before.is_a?(Allocation)

      _, arena, max = before
      return unless arena && max

      call = Call.new(Thread.current.native_thread_id, Native.own_faults, 0)
      @lock.synchronize do
        share_rise(arena, max)
        (@in_flight[arena] ||= []) << call
      end
      call
    end

    def record(name, before, after, call, took)
      name = clean(name)
      return record_allocation(name, before, after, took) if before.is_a?(Allocation)

      index, arena, = before
      _, arena_after, max_after = after
      @lock.synchronize do
        raised = 0
        if call
          share_rise(arena, max_after) if arena_after == arena && max_after
          calls = @in_flight[arena]
          calls.delete(call)
          @in_flight.delete(arena) if calls.empty?
          raised = call.share
        end
        tally_for(name).count(raised)
        @durations.add(took)
        remember_thread(index, name)
      end
    end

    # What the call left allocated: what its thread allocated meanwhile less what it freed.
    def record_allocation(name, before, after, took)
      left = 0
      left = (after.allocated - before.allocated) - (after.deallocated - before.deallocated) if after.is_a?(Allocation)
      @lock.synchronize do
        tally_for(name).count([left, 0].max)
        @durations.add(took)
        remember_thread(nil, name)
      end
    end

    # The arena's rise since its last reading, shared among the calls in flight on it by the
    # faults each made since (the rest of an uneven split to the one that made most).
    def share_rise(arena, max)
      seen = @seen[arena]
      @seen[arena] = max if seen.nil? || max > seen
      calls = @in_flight[arena]
      return if seen.nil? || max <= seen || calls.nil? || calls.empty?

      rise = max - seen
      return calls.first.share += rise if calls.size == 1

      now = calls.map { |call| faults_now(call) }
      made = calls.zip(now).map { |call, faults| faults ? [faults - call.faults, 0].max : 0 }
      total = made.sum
      shares = made.map { |count| total.zero? ? rise / calls.size : rise * count / total }
      shares[made.index(made.max)] += rise - shares.sum
      calls.each_with_index do |call, i|
        call.share += shares[i]
        call.faults = now[i] || call.faults
      end
    end

    # The calling thread's count is read directly, another's from procfs.
    def faults_now(call)
      return Native.own_faults if call.thread_id == Thread.current.native_thread_id

      Native.faults_of(call.thread_id)
    end

    # A name past the limit makes room by folding the smallest other entry into "other".
    def tally_for(name)
      @entries.fetch(name) do
        if @entries.size >= @limit
          smallest = @entries.reject { |entry_name, _| entry_name == OTHER }.min_by { |_, tally| tally.raised_bytes }
          fold(*smallest) if smallest
        end
        @entries[name] = Tally.zero
      end
    end

    def fold(name, tally)
      @entries.delete(name)
      (@entries[OTHER] ||= Tally.zero).add(tally)
    end

    def remember_thread(arena, name)
      @threads.select! { |thread, _| thread.alive? } if @threads.size >= THREADS
      now = Process.clock_gettime(Process::CLOCK_REALTIME)
      seen = @threads[Thread.current]
      if seen
        seen[0] = arena
        seen[1] = name
        seen[2] = now
        return
      end

      @threads[Thread.current] = [arena, name, now] if @threads.size < THREADS
    end

    # Text, one line, at most NAME_LENGTH characters.
    def clean(name)
      text = name.to_s
      # Most names need nothing: they are not copied.
      return text if text.length <= NAME_LENGTH && !text.empty? && !text.match?(/[[:cntrl:]]|\A\s|\s\z/)

      text = text.gsub(/[[:cntrl:]]/, " ").strip
      text = "(unnamed)" if text.empty?
      text.length > NAME_LENGTH ? "#{text[0, NAME_LENGTH - 1]}…" : text
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
        (@attribution || BloatProbe.probe.attribution).measure(-> { self.class.name_of(env) }) { @app.call(env) }
      end

      def self.name_of(env)
        params = env["action_dispatch.request.path_parameters"]
        return "#{params[:controller]}##{params[:action]}" if params && params[:controller] && params[:action]
        return env["sinatra.route"] if env["sinatra.route"]

        "#{env["REQUEST_METHOD"]} #{env["PATH_INFO"].to_s[%r{\A/[^/?]*}] || "/"}"
      end
    end
  end
end
