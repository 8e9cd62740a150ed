# frozen_string_literal: true

require "test_helper"

class ChurnTest < Minitest::Test
  include RubyChild

  def test_result_reports_what_was_done
    result = BloatProbe.churn(count: 1000, min_size: 100, max_size: 200, retain: 0.5, seed: 7)
    assert_equal 1000, result.allocations
    assert_operator result.bytes, :>=, 100 * 1000
    assert_operator result.retained_count, :>, 400
    assert_equal :system, result.allocator
    same = BloatProbe.churn(count: 1000, min_size: 100, max_size: 200, retain: 0.5, seed: 7)
    assert_equal [result.bytes, result.retained_bytes], [same.bytes, same.retained_bytes]
    [result, same].each(&:release)
  end

  # glibc's own count of the bytes in use rises by what churn says it keeps, and falls
  # back when the blocks are released.
  def test_retained_blocks_are_in_use_by_glibc_s_count_until_released
    GC.start
    GC.disable
    before = BloatProbe.mallinfo.uordblks
    result = BloatProbe.churn(count: 2000, min_size: 16 << 10, max_size: 32 << 10, retain: 0.5, seed: 7)
    held = BloatProbe.mallinfo.uordblks - before
    assert_in_delta result.retained_bytes, held, 0.05 * result.retained_bytes
    result.release
    assert_in_delta 0, BloatProbe.mallinfo.uordblks - before, 0.05 * result.retained_bytes
  ensure
    GC.enable
  end

  def test_native_threads_and_the_bundled_jemalloc
    result = BloatProbe.churn(count: 1000, threads: 4, retain: 1.0, allocator: :jemalloc)
    assert_equal 4000, result.allocations
    assert_equal 4, result.threads
    assert_operator BloatProbe.bundled_jemalloc_stats.allocated, :>=, result.retained_bytes
    result.release
  end

  BAD_INPUT = [
    [{ count: "10" }, TypeError, /count must be an Integer, got "10" \(String\)/],
    [{ count: 0 }, RangeError, /count must be in 1\.\.1000000000, got 0/],
    [{ count: -5 }, RangeError, /count must be in 1\.\.1000000000, got -5/],
    [{ count: 2**70 }, RangeError, /count must be in 1\.\.1000000000, got 1180591620717411303424/],
    [{ min_size: 0 }, RangeError, /min_size must be in 1\.\.67108864, got 0/],
    [{ min_size: 500, max_size: 100 }, RangeError, /max_size must be in 500\.\.67108864, got 100/],
    [{ max_size: 1 << 40 }, RangeError, /max_size must be in 1\.\.67108864/],
    [{ retain: 1.5 }, RangeError, /retain must be in 0\.0\.\.1\.0, got 1\.5/],
    [{ retain: -0.1 }, RangeError, /retain must be in 0\.0\.\.1\.0, got -0\.1/],
    [{ retain: Float::NAN }, RangeError, /retain must be in 0\.0\.\.1\.0, got NaN/],
    [{ retain: "half" }, TypeError, /retain must be a Float or an Integer/],
    [{ threads: 0 }, RangeError, /threads must be in 1\.\.64, got 0/],
    [{ threads: 65 }, RangeError, /threads must be in 1\.\.64, got 65/],
    [{ threads: 2.5 }, TypeError, /threads must be an Integer, got 2\.5 \(Float\)/],
    [{ window: -1 }, RangeError, /window must be in 0\.\.1048576, got -1/],
    [{ seed: -1 }, RangeError, /seed must be in 0\.\.9223372036854775807, got -1/],
    [{ distribution: :normal }, ArgumentError, /distribution must be one of :log_uniform, :uniform, got :normal/],
    [{ distribution: "uniform" }, TypeError, /distribution must be a Symbol/],
    [{ allocator: :tcmalloc }, ArgumentError, /allocator must be one of :system, :jemalloc, got :tcmalloc/],
    [{ colour: :red }, ArgumentError, /unknown keyword: :colour/],
    [{ threads: 64, window: 1 << 20, max_size: 1 << 20 }, RangeError, /over the retain limit/]
  ].freeze

  def test_bad_input_raises_a_clear_error
    BAD_INPUT.each do |options, error, message|
      raised = assert_raises(error, options.inspect) { BloatProbe.churn(**options) }
      assert_match message, raised.message, options.inspect
    end
    assert_raises(TypeError) { BloatProbe.trim("0") }
    assert_raises(RangeError) { BloatProbe.trim(-1) }
    assert_raises(TypeError) { BloatProbe.retain_limit = "1G" }
    assert_raises(RangeError) { BloatProbe.retain_limit = 0 }
  end

  # The same cause gives the same exception on one thread, on eight, and on the bundled
  # jemalloc: the thread that hits the limit stops the others, and its error is raised.
  def test_the_retain_limit_stops_churn_and_frees_what_it_took
    result = run_child(<<~RUBY)
      BloatProbe.retain_limit = 32 << 20
      results = [{}, { threads: 8 }, { threads: 8, allocator: :jemalloc }].map do |options|
        error = begin
          BloatProbe.churn(count: 4096, min_size: 16 << 10, max_size: 16 << 10, retain: 1.0, **options)
          nil
        rescue StandardError => e
          e
        end
        { options: options, class: error&.class&.name, message: error&.message, held: BloatProbe.retained_bytes }
      end
      puts JSON.dump(results)
    RUBY
    assert_equal 3, result.size
    result.each do |run|
      assert_equal "BloatProbe::RetainLimitError", run[:class], run.inspect
      assert_match(/pass the retain limit of 33554432 bytes/, run[:message])
      assert_equal 0, run[:held], run.inspect
    end
  end

  # A child forked while another thread churns has the results it inherited, but not the
  # churning thread: what that thread had reserved must not stay counted in the child.
  def test_a_child_forked_during_churn_counts_only_the_results_it_has
    result = run_child(<<~RUBY)
      kept = BloatProbe.churn(count: 256, min_size: 4096, max_size: 4096, retain: 1.0)
      worker = Thread.new { BloatProbe.churn(count: 1_000_000_000, window: 4096, min_size: 4096, max_size: 4096) }
      sleep 0.3
      reader, writer = IO.pipe
      pid = fork do
        reader.close
        writer.puts BloatProbe.retained_bytes
        kept.release
        writer.puts BloatProbe.retained_bytes
        exit!(0)
      end
      writer.close
      child = reader.read.split.map(&:to_i)
      Process.wait(pid)
      parent = BloatProbe.retained_bytes
      worker.kill
      worker.join
      puts JSON.dump(kept: kept.retained_bytes, child: child, parent: parent)
    RUBY
    assert_equal 1 << 20, result[:kept]
    assert_equal [1 << 20, 0], result[:child]
    assert_operator result[:parent], :>=, (1 << 20) + (16 << 20), "the parent still counts its running churn"
  end

  def test_thread_kill_interrupts_a_long_churn_within_a_second
    worker = Thread.new { BloatProbe.churn(count: 1_000_000_000, retain: 0.0) }
    sleep 0.3
    assert worker.alive?
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    worker.kill
    joined = worker.join(5)
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    refute_nil joined, "the churn thread did not stop"
    assert_operator elapsed, :<, 1.0
    assert_equal 0, BloatProbe.retained_bytes
  end

  def test_thread_raise_reaches_the_churning_thread
    worker = Thread.new do
      BloatProbe.churn(count: 1_000_000_000, threads: 2)
    rescue RuntimeError => e
      e.message
    end
    sleep 0.3
    worker.raise(RuntimeError, "stop now")
    assert_equal "stop now", worker.join(5)&.value
  end

  # Ctrl-C and SIGTERM stop a churn on the main thread within a second, also while
  # another thread runs Ruby code or churns (MRI then looks at signals only when a thread
  # waits for the GVL: churn takes it back between slices), and a signal sent by another
  # thread of the same process too.
  def test_signals_interrupt_churn_on_the_main_thread
    {
      "alone" => "",
      "beside a Ruby thread" => "Thread.new { x = 0; loop { x += 1 } };",
      "beside a churning thread" => "Thread.new { BloatProbe.churn(count: 1_000_000_000) };"
    }.each do |company, other_thread|
      %w[INT TERM].each do |signal|
        elapsed = time_to_stop("#{other_thread} BloatProbe.churn(count: 1_000_000_000)") do |pid|
          Process.kill(signal, pid)
        end
        assert_operator elapsed, :<, 1.0, "#{signal} #{company}"
      end
    end
    elapsed = time_to_stop(<<~RUBY) { nil }
      Thread.new { x = 0; loop { x += 1 } }
      Thread.new { sleep 0.3; Process.kill("INT", Process.pid) }
      BloatProbe.churn(count: 1_000_000_000)
    RUBY
    assert_operator elapsed, :<, 1.5, "INT sent by another thread of the process"
  end

  # Thread#wakeup asks for the thread back, but raises nothing: the churn goes on to its end.
  def test_thread_wakeup_does_not_abort_a_churn
    worker = Thread.new { BloatProbe.churn(count: 3_000_000, retain: 0.0) }
    sleep 0.1
    5.times do
      worker.wakeup
      sleep 0.02
    end
    assert_equal 3_000_000, worker.value.allocations
  end

  def test_eight_ruby_threads_make_eight_arenas_unless_capped
    script = <<~RUBY
      ready = Queue.new
      hold = Queue.new
      threads = 8.times.map { |i| Thread.new { BloatProbe.churn(count: 2000, seed: i); ready << 1; hold.pop } }
      8.times { ready.pop }
      puts JSON.dump(arenas: BloatProbe.arena_stats.arena_count, heaps: BloatProbe.memory(detail: true).heap_mappings)
      8.times { hold << 1 }
      threads.each(&:join)
    RUBY
    default = run_child(script, { "MALLOC_ARENA_MAX" => nil })
    capped = run_child(script, { "MALLOC_ARENA_MAX" => "2" })
    assert_operator default[:arenas], :>=, 8
    assert_operator default[:heaps], :>=, 1
    assert_operator capped[:arenas], :<=, 2
  end

  def test_readings_while_25_threads_churn
    result = run_child(<<~RUBY, {}, timeout: 60)
      stop = false
      workers = 25.times.map do |i|
        Thread.new { BloatProbe.churn(count: 2000, seed: i, retain: 0.1).release until stop }
      end
      readings = 0
      max_arenas = 0
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 3
      while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
        max_arenas = [max_arenas, BloatProbe.arena_stats.arena_count].max
        BloatProbe.malloc_stats
        BloatProbe.mallinfo
        readings += 1
      end
      stop = true
      workers.each(&:join)
      puts JSON.dump(readings: readings, max_arenas: max_arenas)
    RUBY
    assert_operator result[:readings], :>, 10
    assert_operator result[:max_arenas], :>, 1
  end

  private

  # Seconds from the child's "go" (plus 0.3 s of churn) to its death, killed by the block.
  def time_to_stop(code)
    reader, writer = IO.pipe
    pid = spawn(RbConfig.ruby, "-I", LIB, "-rbloat_probe", "-e", "$stdout.sync = true; puts :go; #{code}",
                out: writer, err: File::NULL)
    writer.close
    assert_equal "go", reader.gets&.chomp
    sleep 0.3
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    yield pid
    status = nil
    50.times do
      _, status = Process.wait2(pid, Process::WNOHANG)
      break if status

      sleep 0.1
    end
    elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    refute_nil status, "the child ignored the signal for 5 s"
    refute status.success?, "the child should die of the signal"
    elapsed
  ensure
    Process.kill("KILL", pid) if pid && status.nil?
    Process.wait(pid) if pid && status.nil?
    reader&.close
  end
end
