# frozen_string_literal: true

require "test_helper"

# BloatProbe::Guard in real processes: a trim that brings a fragmented process under its
# budget, live memory that only a restart frees, dry-run, and settings checked at boot.
class GuardTest < Minitest::Test
  include RubyChild

  # 25 threads leave glibc's arenas holding freed memory (the diagnosis test's load).
  FRAGMENT = <<~RUBY
    kept = []
    lock = Mutex.new
    Array.new(25) do |seed|
      Thread.new do
        size = LogUniform.new(24..32_768, random: Random.new(seed))
        6.times do
          batch = Array.new(5_000) { "x" * size.draw }
          lock.synchronize { kept.concat(batch.sample(50)); kept.shift(50) if kept.size > 2_000 }
          Thread.pass
        end
      end
    end.each(&:join)
    GC.start
  RUBY

  # The guard's Recorder takes its first moment before the load, as the Puma plugin's does
  # when the app has booted: the load is then what the process grew by.
  def guard_in_child(load, budget:, mode: "on", strikes: 2, ticks: 3)
    run_child(<<~RUBY, {}, timeout: 120)
      recorder = BloatProbe::Recorder.new
      recorder.take(record: false)
      #{load}
      restarts = []
      lines = []
      guard = BloatProbe::Guard.new(budget: #{budget}, mode: #{mode.inspect}, strikes: #{strikes}, recorder: recorder,
                                    restart: ->(decision) { restarts << decision.reason; true },
                                    log: ->(line) { lines << line })
      # The kernel's count of the process's resident memory, around the checks.
      vm_rss = -> { File.foreach("/proc/self/status").find { _1.start_with?("VmRSS:") }.split[1].to_i * 1024 }
      rss_before = vm_rss.call
      decisions = Array.new(#{ticks}) { guard.tick.to_h }
      puts JSON.dump(decisions: decisions, restarts: restarts, lines: lines, released: guard.released_bytes,
                     rss_drop: rss_before - vm_rss.call,
                     actions: guard.actions.map { |(action, verdict), count| [action, verdict, count] })
    RUBY
  end

  def test_fragmentation_over_budget_is_trimmed_and_no_restart_follows
    result = guard_in_child(FRAGMENT, budget: "BloatProbe::Guard::Budget.parse('400M')")
    first = result[:decisions].first
    assert_equal "trim", first[:action], result[:lines].inspect
    assert_equal "arena_fragmentation", first[:verdict]
    assert_operator first[:before], :>, 400 << 20
    assert_operator first[:after], :<=, 400 << 20, "the trim brought it under budget"
    assert_equal %w[none none], result[:decisions].drop(1).map { _1[:action] }, "under budget since"
    assert_empty result[:restarts]
    # What the guard counts as released is what left the process by the kernel's count.
    assert_in_delta result[:rss_drop], result[:released], 0.1 * result[:rss_drop]
    fields = %w[action=trim reason=over_budget verdict=arena_fragmentation before_mib=\d+\.\d after_mib=\d+\.\d
                budget_mib=400\.0 strikes=0/2 mode=on]
    assert_match(/\Abloat_probe guard pid=\d+ #{fields.join(" ")}\z/, result[:lines].first)
  end

  # Live strings: nothing to trim; after `strikes` checks over budget, a restart.
  LIVE = "$kept = Array.new(300) { 'x' * (1 << 20) }"

  def test_live_memory_over_budget_is_restarted_after_its_strikes
    result = guard_in_child(LIVE, budget: "'100M'")
    assert_equal %w[none restart restart], result[:decisions].map { _1[:action] }
    assert_equal "live_native", result[:decisions].first[:verdict]
    assert_equal 2, result[:restarts].size, "each check past the strikes asks for a restart"
    assert_match(/action=restart reason=over_budget_2_checks verdict=live_native .* restarted=true\z/,
                 result[:lines][1])
  end

  # A worker's counts go to its slot in the cluster's directory before a restart ends it,
  # and the worker booted in that slot takes them up: the restart is counted where the
  # count outlives the restarted process, and every action and verdict is there from boot.
  def test_a_restart_is_counted_in_the_slot_before_the_worker_goes
    result = run_child(<<~RUBY, {}, timeout: 120)
      require "tmpdir"
      dir = Dir.mktmpdir("bloat_probe-guard")
      slot = ->() { BloatProbe::Cluster.new(dir).tap { |cluster| cluster.worker = 1 } }
      recorder = BloatProbe::Recorder.new
      recorder.take(record: false)
      #{LIVE}
      carried_at_restart = []
      guard = BloatProbe::Guard.new(budget: "100M", strikes: 1, recorder: recorder, log: ->(_line) {},
                                    restart: ->(_decision) { carried_at_restart << slot.call.carried; true })
      guard.keep_counts_in(slot.call)
      2.times { guard.tick }
      # A slot that cannot be written loses the count, never the restart.
      FileUtils.rm_rf(dir)
      lines = []
      unwritable = BloatProbe::Guard.new(budget: "100M", strikes: 1, recorder: recorder, log: ->(line) { lines << line },
                                         restart: ->(_decision) { lines << "restarted"; true })
      unwritable.keep_counts_in(slot.call.tap { FileUtils.rm_rf(dir) })
      unwritable.tick
      FileUtils.mkdir_p(dir)
      File.write(File.join(dir, "carried-1.json"), JSON.generate(carried_at_restart.last))
      replacement = BloatProbe::Guard.new(budget: "100M", restart: ->(_decision) { true }, recorder: recorder)
      fresh = replacement.action_counts
      replacement.keep_counts_in(slot.call)
      counts = replacement.action_counts.reject { |_key, count| count.zero? }
      puts JSON.dump(carried_at_restart: carried_at_restart, fresh: fresh.values.uniq, fresh_size: fresh.size, lines: lines,
                     counts: counts.map { |(action, verdict), count| [action, verdict, count] })
    RUBY
    assert_equal [["restart", "live_native", 1]], result[:carried_at_restart].first[:actions]
    assert_equal [["restart", "live_native", 2]], result[:carried_at_restart].last[:actions]
    assert_equal [0], result[:fresh]
    assert_equal BloatProbe::Guard::Remedies::ACTIONS.size * BloatProbe::Diagnosis::VERDICTS.size, result[:fresh_size]
    assert_equal [["restart", "live_native", 2]], result[:counts]
    assert_match(/\Abloat_probe guard pid=\d+ reading=cluster error=BloatProbe::ReadingError /, result[:lines][0])
    assert_equal "restarted", result[:lines][1]
  end

  # Past its strikes every check decides "restart" again: logged and counted once.
  def test_dry_run_decides_and_logs_the_same_and_does_nothing
    result = guard_in_child(LIVE, budget: "'100M'", mode: "dry-run", ticks: 5)
    assert_equal %w[none restart restart restart restart], result[:decisions].map { _1[:action] }
    assert_empty result[:restarts]
    assert(result[:lines].all? { |line| line.include?("mode=dry-run") })
    assert_equal 2, result[:lines].size, result[:lines].join("\n")
    assert_equal [["restart", "live_native", 1]], result[:actions]
  end

  # The Trimmer with a floor (the bench's `trim`): a fragmented process is trimmed once,
  # and the next tick finds nothing worth a trim.
  def test_a_trimmer_with_a_floor_trims_only_when_it_pays
    result = run_child(<<~RUBY, {}, timeout: 120)
      #{FRAGMENT}
      trimmer = BloatProbe::Trimmer.new(interval: 1, min_trimmable: 64 << 20)
      2.times { trimmer.tick }
      puts JSON.dump(trimmer.to_h)
    RUBY
    assert_equal 1, result[:trims]
    assert_equal 1, result[:skipped]
    assert_operator result[:released_bytes], :>=, 64 << 20
  end

  # A trim whose memory is back by the next tick (a busy process reusing it) doubles the
  # wait before the next look; once a trim's memory stays out, the wait is one interval.
  def test_a_trim_whose_memory_comes_straight_back_makes_the_trimmer_wait_longer
    result = run_child(<<~RUBY, {}, timeout: 120)
      def fragment
        #{FRAGMENT}
      end
      fragment
      trimmer = BloatProbe::Trimmer.new(interval: 0.5, min_trimmable: 16 << 20)
      trimmer.tick
      regrown = Array.new(trimmer.released_bytes / (1 << 20)) { "x" * (1 << 20) }
      sleep 0.5
      trimmer.tick # judges the trim wasted; too soon for another look
      after_waste = trimmer.to_h
      regrown.clear
      GC.start
      sleep 0.6
      fragment
      trimmer.tick # the look the wait allowed: a second trim
      sleep 0.5
      trimmer.tick # nothing came back this time
      puts JSON.dump(after_waste: after_waste, after_keep: trimmer.to_h)
    RUBY
    assert_equal [1, 1, 2], result[:after_waste].values_at(:trims, :skipped, :wait), result.inspect
    assert_equal 2, result[:after_keep][:trims], result.inspect
    assert_equal 1, result[:after_keep][:wait], result.inspect
  end

  def test_settings_are_checked_and_named
    {
      { "BLOAT_PROBE_GUARD" => "on" } => /BLOAT_PROBE_GUARD=on needs BLOAT_PROBE_GUARD_BUDGET/,
      { "BLOAT_PROBE_GUARD" => "maybe" } => /BLOAT_PROBE_GUARD must be one of on, dry-run, off/,
      { "BLOAT_PROBE_GUARD" => "on", "BLOAT_PROBE_GUARD_BUDGET" => "80" } =>
        /BLOAT_PROBE_GUARD_BUDGET must be bytes .* got "80"/,
      { "BLOAT_PROBE_GUARD" => "on", "BLOAT_PROBE_GUARD_BUDGET" => "0x" } => /got "0x"/,
      { "BLOAT_PROBE_GUARD" => "on", "BLOAT_PROBE_GUARD_BUDGET" => "150%" } => /got "150%"/,
      { "BLOAT_PROBE_GUARD" => "on", "BLOAT_PROBE_GUARD_BUDGET" => "1G", "BLOAT_PROBE_GUARD_STRIKES" => "0" } =>
        /BLOAT_PROBE_GUARD_STRIKES must be a whole number in 1\.\.100, got "0"/
    }.each do |env, message|
      error = assert_raises(BloatProbe::SettingError) do
        BloatProbe::Guard.from_env(env: env, restart: ->(_) { true }, log: ->(_) {})
      end
      assert_match message, error.message
    end
    assert_nil BloatProbe::Guard.from_env(env: {}, restart: ->(_) { true }, log: ->(_) {}), "off unless turned on"
  end
end
