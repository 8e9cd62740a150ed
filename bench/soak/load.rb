# frozen_string_literal: true

require_relative "clock"
require "net/http"

module Soak
  # The mix the soak runs, each part on threads of its own until the deadline: page views
  # from keep-alive clients, heavy requests that raise a worker's memory for good (so that
  # the guard has workers to retire), and Sidekiq jobs with an export now and then. Each
  # counts what happened to every request or job it made.
  class Load
    include Clock

    PAGE_CLIENTS = 4
    PAGES = 1..20
    # A reader's pause between two pages: the machine stays busy, not saturated.
    PAGE_PAUSE = 0.02
    HEAVY_EVERY = 1.0
    # Kept for good by one request in three of the heavy ones: a worker passes its budget
    # after a minute or so, and the guard retires it.
    KEEP_BYTES = 16 << 20
    JOBS_EVERY = 1.0
    LIGHT_JOBS = 5
    EXPORT_EVERY = 10
    # What a keep-alive client meets when the server closed the idle connection first (an
    # end of file, not a reset).
    CLOSED_IDLE = [EOFError].freeze

    attr_reader :outcomes, :jobs_enqueued

    def initialize(port:, sidekiq:, deadline:)
      @port = port
      @sidekiq = sidekiq
      @deadline = deadline
      @outcomes = Hash.new { |hash, kind| hash[kind] = Hash.new(0) }
      @latencies = []
      @lock = Mutex.new
      @jobs_enqueued = 0
    end

    def start
      @threads = Array.new(PAGE_CLIENTS) { |i| Thread.new { page_views(i) } }
      @threads << Thread.new { heavy_requests } << Thread.new { jobs }
      self
    end

    def join
      @threads.each(&:join)
    end

    # Page views' response times in seconds.
    def latencies
      @lock.synchronize { @latencies.dup }
    end

    private

    # A keep-alive client: one connection, opened again when the server closed it.
    def page_views(seed)
      random = Random.new(seed)
      http = nil
      served = 0
      while before_deadline?
        unless http
          http = connect
          served = 0
        end
        started = monotonic
        count(:page_views, begin
          code = http.get("/posts?page=#{random.rand(PAGES)}").code
          served += 1
          @lock.synchronize { @latencies << (monotonic - started) } if code == "200"
          code
        rescue StandardError => e
          http = nil
          # An end of file on a connection that had served requests is the server's close of
          # an idle keep-alive connection, which a client answers by opening another.
          CLOSED_IDLE.include?(e.class) && served.positive? ? "closed_idle" : e.class.name
        end)
        sleep PAGE_PAUSE
      end
    ensure
      http&.finish if http&.started?
    end

    # One heavy request a second: two of three build and drop 10 000 blocks, the third
    # keeps KEEP_BYTES. Each on a fresh connection, as a browser's download would be.
    def heavy_requests
      i = 0
      while before_deadline?
        path = (i % 3).zero? ? "/workload/keep?bytes=#{KEEP_BYTES}" : "/workload/churn?count=10000&seed=#{i}"
        outcome = begin
          Net::HTTP.start("127.0.0.1", @port, open_timeout: 5, read_timeout: 60) { |http| http.get(path).code }
        rescue StandardError => e
          e.class.name
        end
        count(:heavy_requests, outcome)
        i += 1
        sleep HEAVY_EVERY
      end
    end

    def jobs
      i = 0
      while before_deadline?
        export = (i % EXPORT_EVERY).zero?
        batch = LIGHT_JOBS + (export ? 1 : 0)
        @sidekiq.enqueue(batch, lambda do |j|
          j == LIGHT_JOBS ? ["ExportJob", [20_000, i, true]] : ["StringsJob", [500, (i * 10) + j, false]]
        end)
        @jobs_enqueued += batch
        i += 1
        sleep JOBS_EVERY
      end
    end

    def connect
      http = Net::HTTP.new("127.0.0.1", @port)
      http.open_timeout = 5
      http.read_timeout = 30
      # A request that failed is counted, not retried unseen.
      http.max_retries = 0
      http.start
    end

    def count(kind, outcome)
      @lock.synchronize { @outcomes[kind][outcome] += 1 }
    end

    def before_deadline?
      monotonic < @deadline
    end
  end
end
