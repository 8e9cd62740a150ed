# frozen_string_literal: true

module AllocatorBench
  # Progress on stderr, from ruby-progressbar: on a terminal, a bar redrawn in place with
  # the elapsed time and an estimate of what is left; otherwise one plain line per phase.
  # Each run of a configuration counts the same: booting is its first tenth, the load up to
  # eight tenths (by requests answered), the idle tail the rest (by time), so the estimate
  # is the pace of the runs done so far applied to those left.
  class Progress
    UNITS_PER_RUN = 100
    PHASES = { boot: 0...10, load: 10...80, idle: 80...100 }.freeze
    BAR_FORMAT = "%t |%B| %a,%E"
    LINE_FORMAT = "%t (%p%%, %a,%E)"
    DONE_FORMAT = "%t |%B| %a"

    def initialize(runs, io: $stderr)
      require "ruby-progressbar"
      require "ruby-progressbar/outputs/null"
      @io = io
      @tty = io.tty?
      @run = 0
      # Finished by #finish only: at the total, the estimate would turn into a second
      # elapsed time.
      @bar = ProgressBar.create(title: "starting", total: runs * UNITS_PER_RUN, format: BAR_FORMAT, smoothing: 0.0,
                                autofinish: false, output: @tty ? io : ProgressBar::Outputs::Null)
    end

    # phase: :boot, :load or :idle; done: the share of that phase done, 0.0..1.0.
    def update(label, phase, done = 0.0)
      span = PHASES.fetch(phase)
      advance_to(@run * UNITS_PER_RUN + span.begin + ((span.end - span.begin) * done.clamp(0.0, 1.0)).floor)
      # A new title redraws at once; a progress update alone may be throttled. Set last,
      # the frame shows both.
      @bar.title = label
      @io.puts(@bar.to_s(LINE_FORMAT)) if !@tty && phase != @phase
      @phase = phase
    end

    def finish_run
      @run += 1
      @phase = nil
      advance_to(@run * UNITS_PER_RUN)
    end

    def finish
      @bar.format = DONE_FORMAT
      @bar.title = "done"
      @bar.finish
      @io.puts(@bar.to_s(DONE_FORMAT)) unless @tty
    end

    private

    # Short of the total until #finish: at the total, the bar would call itself done.
    def advance_to(units)
      @bar.progress = [units, @bar.total - 1].min
    end
  end
end
