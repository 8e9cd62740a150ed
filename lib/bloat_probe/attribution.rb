# frozen_string_literal: true

module BloatProbe
  # Where the memory went: for each endpoint or job, how often it ran, how often and by how
  # much the high-water mark of the glibc arena it ran on rose while it ran, and how much
  # the process's RSS grew meanwhile. Under glibc an arena's resident size is the
  # high-water mark of what its threads held at once, so the names that raise the marks
  # are the ones that set RSS. Memory stays bounded: LIMIT names, the smallest folded into
  # "other" when a new one comes.
  #
  # Threads may share an arena (25 Puma threads, 16 arenas): two calls that overlap on one
  # see the same rise. Each arena's rise is credited once: to the call that ends first
  # after it, from the mark already credited to the arena's current high-water mark.
  class Attribution
    LIMIT = 50
    OTHER = "other"
    # Longer names are cut here (a label, a log field).
    NAME_LENGTH = 120
    # Threads remembered at most; finished ones are dropped first.
    THREADS = 1024

    # One name's figures: calls, high-water raises and the bytes they added, RSS growth.
    Entry = Reading.define(:name, :calls, :raises, :raised_bytes, :rss_growth, bytes: %i[raised_bytes rss_growth])
    # An entry's running figures, added to under the lock; Entry is their frozen copy.
    Tally = Struct.new(:calls, :raises, :raised_bytes, :rss_growth) do
      def add(other)
        members.each { |field| self[field] += other[field] }
      end
    end

    def initialize(limit: LIMIT)
      @limit = BloatProbe.check_number("limit", limit, 1..10_000, Integer)
      @entries = {}
      @threads = {}
      @credited = {} # arena id => the high-water mark credited so far
      @lock = Mutex.new
    end

    # Runs the block as one call of `name` (a String, or a callable that gives it once the
    # block has run: a Rails route is known only then) and records what it did; returns
    # what the block returned. A call that raises is recorded too.
    def measure(name)
      before = mark
      yield
    ensure
      record(name.respond_to?(:call) ? name.call : name, before, mark) if before
    end

    # Every name's entry, the largest high-water raises first.
    def entries
      @lock.synchronize { @entries.map { |name, tally| Entry.new(name, *tally.to_a) } }
           .sort_by { |entry| [-entry.raised_bytes, -entry.rss_growth, entry.name] }
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

    # [arena index, arena id, its high-water mark, RSS]; no arena figures where they cannot
    # be read.
    def mark
      index, id, max = Native.thread_arena_mark
      [index, id, max, BloatProbe.memory.rss]
    end

    def record(name, before, after)
      name = clean(name)
      index, arena, max_before, rss_before = before
      _, _, max_after, rss_after = after
      grown = [rss_after - rss_before, 0].max
      @lock.synchronize do
        raised = credit(arena, max_before, max_after)
        tally_for(name).add(Tally.new(1, raised.positive? ? 1 : 0, raised, grown))
        remember_thread(index, name)
      end
    end

    # The part of the arena's rise during the call that no earlier call was credited with.
    def credit(arena, max_before, max_after)
      return 0 unless arena && max_before && max_after

      from = [max_before, @credited[arena] || 0].max
      @credited[arena] = [max_after, @credited[arena] || 0].max
      [max_after - from, 0].max
    end

    # A name past the limit makes room by folding the smallest other entry into "other".
    def tally_for(name)
      @entries.fetch(name) do
        if @entries.size >= @limit
          smallest = @entries.reject { |entry_name, _| entry_name == OTHER }.min_by { |_, tally| tally.raised_bytes }
          fold(*smallest) if smallest
        end
        @entries[name] = Tally.new(0, 0, 0, 0)
      end
    end

    def fold(name, tally)
      @entries.delete(name)
      (@entries[OTHER] ||= Tally.new(0, 0, 0, 0)).add(tally)
    end

    def remember_thread(arena, name)
      @threads.select! { |thread, _| thread.alive? } if @threads.size >= THREADS
      @threads[Thread.current] = [arena, name, Time.now.to_f] if @threads.size < THREADS
    end

    # Text, one line, at most NAME_LENGTH characters.
    def clean(name)
      text = name.to_s.gsub(/[[:cntrl:]]/, " ").strip
      text = "(unnamed)" if text.empty?
      text.length > NAME_LENGTH ? "#{text[0, NAME_LENGTH - 1]}…" : text
    end

    # A Rack middleware that measures each request under its route's name: Rails's
    # "controller#action", Sinatra's route, else the method and the path's first segment.
    #
    #   # config/application.rb
    #   config.middleware.insert(0, BloatProbe::Attribution::Middleware)
    class Middleware
      def initialize(app, attribution = BloatProbe.probe.attribution)
        @app = app
        @attribution = attribution
      end

      def call(env)
        @attribution.measure(-> { self.class.name_of(env) }) { @app.call(env) }
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
