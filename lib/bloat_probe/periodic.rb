# frozen_string_literal: true

module BloatProbe
  # A named background thread that does its work every `@interval` seconds, for Trimmer,
  # Reporter and Guard. start is idempotent and starts the thread again where it is gone: in a
  # forked child (a Puma worker after preload_app!) the parent's thread does not exist.
  module Periodic
    def start
      return self if @thread&.alive?

      @thread = Thread.new do
        Thread.current.name = thread_name
        loop do
          sleep @interval unless work_first?
          tick
          sleep @interval if work_first?
        end
      end
      self
    end

    # Ends the thread at once, whatever is left of the interval.
    def stop
      @thread&.kill&.join
      @thread = nil
    end

    def running?
      !!@thread&.alive?
    end
  end
end
