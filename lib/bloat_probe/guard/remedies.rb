# frozen_string_literal: true

module BloatProbe
  class Guard
    # What the guard does once it has decided: gives back what the allocator holds free,
    # or restarts the process gracefully; in dry-run, neither, and it says what it would
    # have done.
    class Remedies
      # Per allocator, how it gives back what it holds free.
      GIVE_BACK = { glibc: :trim, jemalloc: :purge }.freeze
      # Every action the guard can count.
      ACTIONS = [*GIVE_BACK.values, :restart].freeze

      # restart: a callable given the decision, which restarts the process gracefully and
      # returns true, or returns false where it cannot (Puma in single mode).
      def initialize(restart:, dry_run:)
        unless restart.respond_to?(:call)
          raise TypeError, "restart must respond to #call, got #{BloatProbe.excerpt(restart)}"
        end

        @restart = restart
        @dry_run = dry_run
      end

      # Trim (glibc) or purge (jemalloc); the action taken, or nil where neither applies.
      def give_back
        action = GIVE_BACK[BloatProbe.allocator.name] or return
        unless @dry_run
          action == :trim ? BloatProbe.trim : BloatProbe.jemalloc_purge
        end
        action
      end

      # true where the process restarts, false where nothing can restart it, nil in dry-run.
      def restart(decision)
        @dry_run ? nil : @restart.call(decision)
      end
    end
  end
end
