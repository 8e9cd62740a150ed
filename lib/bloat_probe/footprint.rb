# frozen_string_literal: true

module BloatProbe
  # What the probe itself holds in this process, to show that it does not grow: its Ruby
  # objects (instances of the classes in the BloatProbe namespace) by class, its threads,
  # the names its Attribution keeps, the samples its Recorder keeps, and the CPU its
  # Attribution spent on its own bookkeeping. .take runs a full GC (so that garbage is not
  # counted) and walks the whole Ruby heap once, the GVL held: for a soak or a console,
  # not for every request.
  Footprint = Reading.define(:objects, :threads, :attribution_names, :history_samples, :attribution_calls,
                             :attribution_cpu_seconds)

  class Footprint
    def self.take(probe = BloatProbe.probe)
      GC.start
      classes = namespace_classes
      objects = Hash.new(0)
      ObjectSpace.each_object(Object) do |object|
        klass = object.class
        objects[klass.name] += 1 if classes.key?(klass)
      end
      calls, cpu = probe.attribution.overhead
      new(objects.sort.to_h, Thread.list.count { |thread| thread.name&.start_with?("bloat_probe") },
          probe.attribution.entries.size, probe.recorder.history.size, calls, cpu)
    end

    # { class => true }, looked up by identity: a test per object of the heap.
    def self.namespace_classes
      ObjectSpace.each_object(Class).select { |klass| klass.name&.start_with?("BloatProbe::") }
                 .to_h { |klass| [klass, true] }.compare_by_identity
    end
  end
end
