# frozen_string_literal: true

module BloatProbe
  # BLOAT_PROBE_TRIAL="arena_max=2,trim": remedies tried side by side in one Puma cluster,
  # on the app's own traffic. Worker 0 keeps glibc's defaults as the control; worker 1
  # takes the first remedy, worker 2 the second, and so on; workers past the remedies are
  # controls too. A worker booted in a slot's place (guard, phased restart, crash) takes
  # the slot's remedy again. Each remedy is taken up in the worker right after fork,
  # before it serves (Probe#take_up).
  class Trial
    SETTING = "BLOAT_PROBE_TRIAL"
    TRIM = "trim"
    # The trim remedy's Trimmer: a look each second, a trim where it returns 64 MiB or more
    # (the bench's trim configuration).
    TRIM_INTERVAL = 1.0
    TRIM_MIN = 64 << 20

    # One remedy: a malloc parameter and its value, "trim" (a Trimmer in that worker), or
    # the control. Its label, as the setting wrote it, is what its series and log lines carry.
    Remedy = Struct.new(:name, :value, :label) do
      alias_method :to_s, :label

      def control?
        name == CONTROL_NAME
      end

      def trim?
        name == TRIM
      end
    end
    CONTROL_NAME = "control"
    CONTROL = Remedy.new(CONTROL_NAME, nil, CONTROL_NAME).freeze

    attr_reader :remedies

    # The trial the environment asks for, checked against the cluster it would run in;
    # nil where none is asked for. A bad one raises SettingError, naming the setting.
    def self.from_env(workers:, trimmer:, env: ENV)
      text = env[SETTING].to_s.strip
      return if text.empty?

      new(text.split(",").map { |item| remedy(item.strip) }, workers: workers, trimmer: trimmer)
    end

    def self.remedy(item)
      name, value = item.split("=", 2)
      return Remedy.new(TRIM, nil, TRIM).freeze if name == TRIM && value.nil?

      limits = Native::MALLOC_PARAMETERS.find { |parameter, _min, _max| parameter.to_s == name }
      unless limits
        known = Native::MALLOC_PARAMETERS.map { |parameter, *| "#{parameter}=…" }
        raise SettingError,
              "#{SETTING}: unknown remedy #{BloatProbe.excerpt(item)}; the remedies are #{known.join(", ")} and #{TRIM}"
      end

      Remedy.new(name, parameter_value(*limits, value), item).freeze
    end

    # arena_max a whole number; the thresholds bytes with a unit (64K, 1M), as every size setting.
    def self.parameter_value(parameter, min, max, text)
      range = min..max
      value = parameter == :arena_max ? Integer(text.to_s, 10, exception: false) : Setting.parse_bytes(text)
      return value if value && range.cover?(value)

      what = parameter == :arena_max ? "a whole number" : "bytes with a unit (K, M or G)"
      raise SettingError, "#{SETTING}: #{parameter} must be #{what} in #{range}, got #{BloatProbe.excerpt(text)}"
    end
    private_class_method :remedy, :parameter_value

    # workers: Puma's worker count; trimmer: whether every worker already runs a Trimmer.
    def initialize(remedies, workers:, trimmer: false)
      @remedies = remedies
      check(workers, trimmer)
    end

    # The remedy of worker `index`: the control for worker 0 and those past the remedies.
    def remedy_for(index)
      index.between?(1, @remedies.size) ? @remedies[index - 1] : CONTROL
    end

    private

    def check(workers, trimmer)
      allocator = BloatProbe.allocator
      unless allocator.glibc?
        raise SettingError, "#{SETTING} tries glibc's remedies, but this process allocates with #{allocator}; an " \
                            "allocator cannot be swapped after fork: compare another allocator with LD_PRELOAD " \
                            "in a process of its own"
      end
      raise SettingError, "#{SETTING} needs Puma's cluster mode (workers 2 or more), not single mode" if workers < 1

      if @remedies.size > workers - 1
        raise SettingError, "#{SETTING}: #{@remedies.size} remedies need #{@remedies.size + 1} workers (worker 0 " \
                            "is the control), and Puma runs #{workers}"
      end
      return unless trimmer && @remedies.any?(&:trim?)

      raise SettingError, "#{SETTING}: the #{TRIM} remedy needs a control that does not trim, but " \
                          "BLOAT_PROBE_TRIM_INTERVAL starts a Trimmer in every worker"
    end
  end
end
