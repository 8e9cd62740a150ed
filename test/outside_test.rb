# frozen_string_literal: true

require "test_helper"
require "tmpdir"

# bloat-probe PID: a process read from outside, checked against the process's own view
# (BloatProbe.arena_stats inside it) and the kernel's.
class OutsideTest < Minitest::Test
  include RubyChild

  COMMAND = File.expand_path("../target/release/bloat-probe", __dir__)
  # The exit codes that `bloat-probe --help` and the README document.
  EXIT = { read: 0, usage: 2, no_process: 3, not_permitted: 4, nothing_to_read: 5 }.freeze

  # A Ruby process with the gem whose 16 threads fragment arenas of their own (one block
  # in ten of 8–32 KiB kept) and then hold still; it answers "stats" on stdin with its
  # own arena_stats, and ends at "exit".
  FRAGMENTED = <<~RUBY
    ready = Queue.new
    hold = Queue.new
    threads = Array.new(16) do |i|
      Thread.new do
        kept = BloatProbe.churn(count: 3_000, window: 3_000, min_size: 8 << 10, max_size: 32 << 10, retain: 0.1, seed: i)
        ready << 1
        hold.pop
        kept.release
      end
    end
    16.times { ready.pop }
    GC.start
    GC.disable
    $stdout.puts "ready"
    $stdout.flush
    while (line = $stdin.gets)
      case line.chomp
      when "stats" then $stdout.puts JSON.dump(BloatProbe.arena_stats.to_h)
      when "exit" then break
      end
      $stdout.flush
    end
    hold.close
    threads.each(&:join)
  RUBY

  def bloat_probe(*args, user: nil)
    command = user ? ["setpriv", "--reuid=#{user}", "--regid=#{user}", "--clear-groups", COMMAND] : [COMMAND]
    out, err, status = Open3.capture3(*command, *args.map(&:to_s))
    [out, err, status.exitstatus]
  end

  def with_fragmented_child(env = {})
    script = "require 'json'; require 'bloat_probe'\n#{FRAGMENTED}"
    Open3.popen2(env, RbConfig.ruby, "-I", LIB, "-e", script) do |stdin, stdout, wait|
      Timeout.timeout(60) { assert_equal "ready", stdout.gets&.chomp }
      ask = lambda do
        stdin.puts "stats"
        JSON.parse(Timeout.timeout(30) { stdout.gets }, symbolize_names: true)
      end
      yield wait.pid, ask
    ensure
      stdin.puts "exit"
      stdin.close
      Timeout.timeout(30) { wait.value }
    end
  end

  def close_enough(outside, own, what)
    slack = [own.abs / 100, 64 << 10].max
    assert_in_delta own, outside, slack, "#{what}: outside #{outside}, own #{own}"
  end

  def test_it_reads_every_arena_as_the_process_itself_reads_it
    with_fragmented_child do |pid, ask|
      out, err, code = bloat_probe(pid, "--json")
      own = ask.call[:glibc]
      assert_equal EXIT[:read], code, err
      report = JSON.parse(out, symbolize_names: true)
      outside = report[:arena_stats][:glibc]
      assert_operator own[:arena_count], :>=, 8, "the child fragmented its arenas"
      assert_equal own[:arena_count], outside[:arena_count], report[:arenas_found]
      assert_equal own[:mmap_count], outside[:mmap_count]
      own[:arenas].zip(outside[:arenas]).each do |mine, theirs|
        %i[system in_use free trimmable].each do |field|
          close_enough theirs[field], mine[field], "arena #{mine[:index]} #{field}"
        end
      end
      assert_empty report[:moving_arenas], "a quiet process's arenas hold still"
      # Its RSS against the kernel's, read just after.
      rss = File.read("/proc/#{pid}/statm").split[1].to_i * Etc.sysconf(Etc::SC_PAGESIZE)
      assert_in_delta rss, report[:memory][:rss], rss / 50
      assert_equal "arena_fragmentation", report[:diagnosis][:verdict]
      close_enough report[:diagnosis][:trimmable], own[:arenas].sum { |arena| arena[:trimmable] }, "trim estimate"
    end
  end

  def test_the_text_report_names_the_verdict_and_what_cannot_be_known
    with_fragmented_child do |pid, _ask|
      out, err, code = bloat_probe(pid)
      assert_equal EXIT[:read], code, err
      assert_match(/^process #{pid} \(ruby[\d.]*\): glibc \d+\.\d+/, out)
      assert_match(/^arenas +\d+ \(found from an arena heap/, out)
      assert_match(/^verdict  arena_fragmentation: /, out)
      assert_match(/^unknown from outside: the Ruby heap/, out)
      out, err, code = bloat_probe(pid, "--watch", "0.6", "--count", "6")
      assert_equal EXIT[:read], code, err
      assert_equal 6, out.scan(/^process #{pid} /).size
      # A trend needs 5 readings over 2 s: 0.6 s apart, the watch draws it from the 5th on.
      assert_equal 4, out.scan(/^trend    not yet/).size
      assert_match(/^trend    over 6 readings, \d+ s: in use [-\d.]+ \S+ per hour$/, out)
    end
  end

  # Arenas read while 4 threads keep allocating and freeing in them: every reading ends,
  # with no arena holding more free than it has; what moved under three tries is marked,
  # not shown as exact.
  def test_a_busy_process_is_read_without_a_crash_a_hang_or_a_moving_figure_shown_as_exact
    script = <<~RUBY
      threads = Array.new(4) do |i|
        Thread.new { loop { BloatProbe.churn(count: 20_000, window: 500, seed: i) } }
      end
      $stdout.puts "ready"
      $stdout.flush
      $stdin.gets
      threads.each(&:kill)
    RUBY
    Open3.popen2(RbConfig.ruby, "-I", LIB, "-r", "bloat_probe", "-e", script) do |stdin, stdout, wait|
      Timeout.timeout(30) { stdout.gets }
      moved = 0
      5.times do
        out, err, code = Timeout.timeout(30) { bloat_probe(wait.pid, "--json") }
        assert_equal EXIT[:read], code, err
        report = JSON.parse(out, symbolize_names: true)
        glibc = report[:arena_stats][:glibc]
        assert_operator glibc[:arena_count], :>=, 5
        glibc[:arenas].each do |arena|
          next if report[:moving_arenas].include?(arena[:index])

          # A walk that went astray would count chunks past the arena's own bytes.
          assert_operator arena[:free], :<=, arena[:system], "arena #{arena[:index]}"
        end
        moved += report[:moving_arenas].size
      end
      puts "\n5 readings of 4 busy threads' arenas: #{moved} arena readings marked moving"
      stdin.puts
    end
  end

  def test_top_lists_the_processes_it_may_read
    with_fragmented_child do |pid, _ask|
      out, err, code = bloat_probe("top", "--json")
      assert_equal EXIT[:read], code, err
      child = JSON.parse(out, symbolize_names: true).find { |report| report[:pid] == pid }
      refute_nil child, "the fragmented child is listed"
      assert_equal "arena_fragmentation", child[:diagnosis][:verdict]
      out, = bloat_probe("top")
      assert_match(/^ +#{pid} ruby[\d.]* .* arena_fragmentation$/, out)
      assert_match(/^\d+ read; \d+ not permitted/, out.lines.last)
    end
  end

  # exe/bloat-probe, the gem's executable (the same command through the extension): the
  # same reading as the binary's, and a watch that Ctrl-C ends at once.
  def test_the_gems_executable_reads_alike_and_stops_on_ctrl_c
    gem_command = [RbConfig.ruby, "-I", LIB, File.expand_path("../exe/bloat-probe", __dir__)]
    with_fragmented_child do |pid, _ask|
      out, err, status = Open3.capture3(*gem_command, pid.to_s, "--json")
      assert status.success?, err
      theirs = JSON.parse(out, symbolize_names: true)
      binary, = bloat_probe(pid, "--json")
      ours = JSON.parse(binary, symbolize_names: true)
      assert_equal ours[:arena_stats][:glibc][:arenas], theirs[:arena_stats][:glibc][:arenas]
      Open3.popen3(*gem_command, pid.to_s, "--watch", "60") do |_in, stdout, stderr, wait|
        Timeout.timeout(30) { stdout.gets }
        started = monotonic
        Process.kill("INT", wait.pid)
        status = Timeout.timeout(10) { wait.value }
        assert_operator monotonic - started, :<, 2, "Ctrl-C ends a watch at its next look"
        refute status.success?
        assert_match(/Interrupt/, stderr.read)
      end
    end
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  def test_a_process_with_only_its_main_arena_is_found_through_our_own_libc
    result = nil
    Open3.popen2(RbConfig.ruby, "-e", "$stdout.puts 'ready'; $stdout.flush; $stdin.gets") do |stdin, stdout, wait|
      Timeout.timeout(30) { stdout.gets }
      out, err, code = bloat_probe(wait.pid, "--json")
      assert_equal EXIT[:read], code, err
      result = JSON.parse(out, symbolize_names: true)
      stdin.puts
    end
    assert_equal 1, result[:arena_stats][:glibc][:arena_count], result[:arenas_found]
    assert_match(/offset it has in this command's own libc/, result[:arenas_found])
  end

  def test_bad_input_gets_a_message_and_its_exit_code
    _out, err, code = bloat_probe("nope")
    assert_equal [EXIT[:usage], "bloat-probe: \"nope\" is not a PID: a process number from 1 to 2147483647"],
                 [code, err.lines.first.chomp]
    _out, err, code = bloat_probe(2**31 - 2)
    assert_equal [EXIT[:no_process], "bloat-probe: no process #{2**31 - 2}\n"], [code, err]
    _out, err, code = bloat_probe(2)
    assert_equal [EXIT[:nothing_to_read], "bloat-probe: process 2 is a kernel thread: it has no user memory\n"],
                 [code, err]
    zombie = spawn("true")
    sleep 0.05 until File.read("/proc/#{zombie}/stat").split(") ").last.start_with?("Z")
    _out, err, code = bloat_probe(zombie)
    Process.wait(zombie)
    assert_equal EXIT[:nothing_to_read], code, err
    assert_match(/is a zombie/, err)
  end

  def test_another_users_process_names_what_is_needed
    skip "needs root, to run the command as another user" unless Process.uid.zero?
    with_fragmented_child do |pid, _ask|
      _out, err, code = bloat_probe(pid, user: 65_534)
      assert_equal EXIT[:not_permitted], code, err
      assert_match(/not permitted to read process #{pid} .*same user.*CAP_SYS_PTRACE.*--cap-add SYS_PTRACE/, err)
    end
  end

  def test_a_static_binary_and_other_allocators_are_named_and_their_memory_read
    Dir.mktmpdir("bloat_probe-static") do |dir|
      File.write(File.join(dir, "wait.c"), "#include <unistd.h>\nint main(void) { pause(); return 0; }\n")
      _, status = Open3.capture2e("gcc", "-static", "-o", File.join(dir, "wait"), File.join(dir, "wait.c"))
      assert status.success?, "gcc -static"
      static = spawn(File.join(dir, "wait"))
      sleep 0.2
      out, err, code = bloat_probe(static, "--json")
      Process.kill(:KILL, static)
      Process.wait(static)
      assert_equal EXIT[:read], code, err
      report = JSON.parse(out, symbolize_names: true)
      assert_nil report[:arena_stats][:glibc]
      assert_match(/no libc mapped/, report[:arenas_found])
      assert_operator report[:memory][:rss], :>, 0
    end
    { "jemalloc" => "libjemalloc.so.2", "tcmalloc" => "libtcmalloc_minimal.so.4" }.each do |allocator, library|
      assert_preloaded_allocator_named(allocator, library_path(library) || flunk("#{library}: bin/setup installs it"))
    end
  end

  def assert_preloaded_allocator_named(allocator, library)
    Open3.popen2({ "LD_PRELOAD" => library }, RbConfig.ruby, "-e", "puts 1; $stdout.flush; $stdin.gets") do |i, o, w|
      Timeout.timeout(30) { o.gets }
      out, err, code = bloat_probe(w.pid, "--json")
      i.puts
      assert_equal EXIT[:read], code, err
      report = JSON.parse(out, symbolize_names: true)
      assert_equal allocator, report[:arena_stats][:allocator]
      assert_nil report[:arena_stats][:glibc]
      assert_match(/#{allocator} serves malloc/, report[:arenas_found])
      assert_operator report[:memory][:pss], :>, 0
    end
  end
end
