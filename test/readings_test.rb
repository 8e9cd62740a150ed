# frozen_string_literal: true

require "test_helper"

class ReadingsTest < Minitest::Test
  include RubyChild

  def test_retaining_64_mib_raises_uordblks_and_release_lowers_it
    # Earlier tests' garbage is collected first and the GC held off, so that a sweep
    # between two readings cannot offset what the churn kept.
    GC.start
    GC.disable
    before = BloatProbe.mallinfo.uordblks
    result = BloatProbe.churn(count: 4096, min_size: 16 << 10, max_size: 16 << 10, retain: 1.0, window: 0)
    during = BloatProbe.mallinfo.uordblks
    assert_equal 64 * MiB, result.retained_bytes
    assert_operator during - before, :>=, 64 * MiB
    assert_equal 64 * MiB, result.release
    after = BloatProbe.mallinfo.uordblks
    assert_operator during - after, :>=, 64 * MiB
    assert_equal 0, result.release, "a second release frees nothing"
  ensure
    GC.enable
  end

  # Checked against sources of their own: glibc's mallinfo2 totals, /proc, and 64 MiB that
  # this test keeps on a thread of its own.
  def test_arena_stats_agree_with_mallinfo_proc_and_a_known_allocation
    GC.start
    GC.disable
    kept = Thread.new do
      BloatProbe.churn(count: 4096, min_size: 16 << 10, max_size: 16 << 10, retain: 1.0, window: 0)
    end.value
    stats = BloatProbe.arena_stats
    mallinfo = BloatProbe.mallinfo
    vm_rss = File.read("/proc/self/status")[/^VmRSS:\s+(\d+) kB/, 1].to_i * 1024
    assert stats.glibc?
    # glibc's other report, malloc_stats, counts the arenas on its own.
    assert_equal BloatProbe.malloc_stats.arenas.size, stats.arena_count
    assert_in_delta mallinfo.arena, stats.system, 1 * MiB
    assert_in_delta mallinfo.uordblks, stats.in_use, 1 * MiB
    assert_in_delta mallinfo.fordblks, stats.free, 1 * MiB
    assert_in_delta vm_rss, stats.rss, 4 * MiB
    assert_operator stats.arenas.map(&:in_use).max, :>=, 64 * MiB, "the arena that served the 64 MiB"
    assert_match(/arena +system +in use +free/, stats.inspect)
  ensure
    kept&.release
    GC.enable
  end

  def test_readings_are_frozen_values_with_to_h
    memory = BloatProbe.memory
    assert memory.frozen?
    assert_operator memory.rss, :>, memory.anon
    assert_nil memory.swap
    assert_nil memory.pss
    detailed = BloatProbe.memory(detail: true)
    assert_kind_of Integer, detailed.swap
    assert_kind_of Integer, detailed.heap_mappings
    assert_operator detailed.uss, :<=, detailed.pss
    assert_operator detailed.pss, :<=, detailed.rss + (1 << 20)
    # The main arena's brk heap at least, and no more than the process holds.
    assert_operator detailed.arena_resident, :>, 0
    assert_operator detailed.arena_resident, :<, detailed.rss
    assert_kind_of Hash, BloatProbe.arena_stats.to_h.dig(:glibc, :arenas).first
    assert_match(/\A#<BloatProbe::Memory rss=\d+(\.\d)? MiB, anon=.*, file=[^,]*>\z/, memory.inspect)
    detail = /, swap=\d+(\.\d)? ?[KMG]?i?B, heap_mappings=\d+, pss=.*, uss=.*, arena_resident=[^,]*, rollup_age=0\.0, /
    assert_match detail, detailed.inspect
  end

  def test_memory_in_a_forked_child_reads_the_child
    BloatProbe.memory # the parent's reading keeps /proc/self/statm open
    reader, writer = IO.pipe
    child = fork do
      reader.close
      # Free pages the test process left in its arenas would be reused without growing
      # RSS: handed back first, the 128 MiB must be new pages.
      BloatProbe.trim
      before = BloatProbe.memory.rss
      kept = BloatProbe.churn(count: 2048, min_size: 64 << 10, max_size: 64 << 10, retain: 1.0, window: 0)
      writer.puts(BloatProbe.memory.rss - before)
      kept.release
      exit!(0)
    end
    writer.close
    growth = Integer(reader.read)
    Process.wait(child)
    assert_operator growth, :>=, 100 * MiB, "the child's 128 MiB show in the child's RSS"
  ensure
    reader&.close
  end

  # Each figure against the kernel's own line for it, in a forked child whose pages are
  # mostly shared with its parent: PSS then counts half of them and USS none, so the two
  # differ by tens of MiB, and a swapped or misnamed field lands far outside the margin.
  def test_memory_fields_match_smaps_rollup_and_statm_by_name
    shared = Array.new(64) { "x" * (1 << 20) } # 64 MiB in the parent, shared after fork
    reader, writer = IO.pipe
    child = fork do
      reader.close
      memory = BloatProbe.memory(detail: true)
      rollup = File.read("/proc/self/smaps_rollup")
      statm = File.read("/proc/self/statm").split.map { |pages| Integer(pages) * Etc.sysconf(Etc::SC_PAGESIZE) }
      writer.puts(JSON.generate(memory: memory.to_h, rollup: rollup, statm: statm))
      exit!(0)
    end
    writer.close
    seen = JSON.parse(reader.read, symbolize_names: true)
    Process.wait(child)
    kib = ->(key) { seen[:rollup][/^#{key}:\s+(\d+) kB/, 1].to_i * 1024 }
    memory = seen[:memory]
    assert_operator kib.call("Pss") - (kib.call("Private_Clean") + kib.call("Private_Dirty")), :>, 16 * MiB,
                    "the child's PSS and USS differ enough to tell apart"
    assert_in_delta kib.call("Pss"), memory[:pss], 2 * MiB
    assert_in_delta kib.call("Private_Clean") + kib.call("Private_Dirty"), memory[:uss], 2 * MiB
    assert_in_delta kib.call("Swap"), memory[:swap], 2 * MiB
    %w[Shared_Clean Shared_Dirty Private_Clean Private_Dirty].each do |key|
      assert_in_delta kib.call(key), memory[key.downcase.to_sym], 2 * MiB, key
    end
    assert_in_delta seen[:statm][1], memory[:rss], 2 * MiB
    assert_in_delta seen[:statm][2], memory[:file], 2 * MiB
    assert_in_delta seen[:statm][1] - seen[:statm][2], memory[:anon], 2 * MiB
  ensure
    reader&.close
    shared&.clear
  end

  # A forked child shares its parent's pages until it writes them: 64 MiB it inherited
  # count as shared, then, once it has written them, as private and dirty.
  def test_a_forked_child_shares_its_parents_pages_until_it_writes_them
    inherited = Array.new(64) { "x" * (1 << 20) }
    reader, writer = IO.pipe
    child = fork do
      reader.close
      at_fork = BloatProbe.memory(detail: true)
      inherited.each { |block| block.setbyte(0, 1) && block.tr!("x", "y") }
      written = BloatProbe.memory(detail: true)
      writer.puts(JSON.generate([at_fork.to_h, written.to_h]))
      exit!(0)
    end
    writer.close
    at_fork, written = JSON.parse(reader.read, symbolize_names: true)
    Process.wait(child)
    shared = ->(memory) { memory[:shared_clean] + memory[:shared_dirty] }
    assert_operator shared.call(at_fork), :>=, 64 * MiB, "inherited pages are shared"
    assert_operator shared.call(at_fork) - shared.call(written), :>=, 56 * MiB, "written pages are no longer shared"
    assert_operator written[:private_dirty] - at_fork[:private_dirty], :>=, 56 * MiB, "written pages are private"
    assert_equal written[:private_clean] + written[:private_dirty], written[:uss]
  ensure
    reader&.close
    inherited&.clear
  end

  def test_allocator_is_glibc_with_its_version
    allocator = BloatProbe.allocator
    assert_equal :glibc, allocator.name
    assert_match(/\A2\.\d+/, allocator.version)
    assert_raises(BloatProbe::NotJemallocError) { BloatProbe.jemalloc_stats }
  end

  def test_malloc_stats_counts_the_same_arenas_as_arena_stats
    counts = run_child(<<~RUBY)
      ready = Queue.new
      hold = Queue.new
      threads = 4.times.map { Thread.new { BloatProbe.churn(count: 500); ready << 1; hold.pop } }
      4.times { ready.pop }
      stats = BloatProbe.malloc_stats
      puts JSON.dump(malloc_stats: stats.arenas.size, arena_stats: BloatProbe.arena_stats.arena_count, text: stats.text)
      4.times { hold << 1 }
      threads.each(&:join)
    RUBY
    assert_operator counts[:arena_stats], :>=, 5
    assert_equal counts[:arena_stats], counts[:malloc_stats]
    assert_match(/Arena 0:\nsystem bytes +=/, counts[:text])
  end

  def test_trim_returns_the_holes_of_a_released_fragmented_set
    result = run_child(<<~RUBY)
      # Interleave a set to release with a sparse set that stays, so the freed space
      # lies between live chunks and free() alone cannot give it back.
      transient = BloatProbe.churn(count: 40_000, min_size: 1024, max_size: 16 << 10, retain: 0.9, seed: 1)
      pinned = BloatProbe.churn(count: 2_000, min_size: 64, max_size: 512, retain: 1.0, seed: 2)
      BloatProbe.churn(count: 40_000, min_size: 1024, max_size: 16 << 10, retain: 0.0, window: 0, seed: 3)
      transient.release
      released_rss = BloatProbe.memory.rss
      trim = BloatProbe.trim
      puts JSON.dump(released_rss: released_rss, before: trim.rss_before, after: trim.rss_after,
                     released: trim.released, pinned: pinned.retained_bytes)
    RUBY
    assert result[:released]
    assert_operator result[:before] - result[:after], :>=, 100 * MiB, result.inspect
  end

  def test_jemalloc_preloaded_is_detected_and_read
    path = library_path("libjemalloc.so.2")
    skip "libjemalloc2 is not installed (bin/setup installs it)" unless path
    result = run_child(<<~RUBY, { "LD_PRELOAD" => path })
      kept = BloatProbe.churn(count: 1000, retain: 1.0)
      stats = BloatProbe.jemalloc_stats
      not_glibc = begin; BloatProbe.mallinfo; nil; rescue BloatProbe::NotGlibcError => e; e.message; end
      arenas = BloatProbe.arena_stats
      puts JSON.dump(allocator: BloatProbe.allocator.name, allocated: stats.allocated, kept: kept.retained_bytes,
                     not_glibc: not_glibc, glibc: arenas.glibc?, arena_count: arenas.arena_count,
                     inspect: arenas.inspect)
    RUBY
    assert_equal "jemalloc", result[:allocator]
    assert_operator result[:allocated], :>=, result[:kept]
    assert_match(/allocates with jemalloc/, result[:not_glibc])
    refute result[:glibc]
    assert_nil result[:arena_count]
    assert_match(/glibc's arenas are not in use/, result[:inspect])
  end

  # Debian 12 has mimalloc 2 (libmimalloc.so.2), Debian 13 mimalloc 3 (libmimalloc.so.3):
  # the version read through mi_version must be the library's own.
  def test_tcmalloc_and_mimalloc_are_detected
    { "tcmalloc" => %w[libtcmalloc_minimal.so.4],
      "mimalloc" => %w[libmimalloc.so.3 libmimalloc.so.2] }.each do |name, libraries|
      path = libraries.filter_map { |library| library_path(library) }.first
      flunk "none of #{libraries.join(", ")} is installed (bin/setup installs it)" unless path

      result = run_child("puts JSON.dump(allocator: BloatProbe.allocator.to_h)", { "LD_PRELOAD" => path })
      assert_equal name, result[:allocator][:name]
      assert_match(/\A\d+\.\d+/, result[:allocator][:version])
      major = path[/libmimalloc\.so\.(\d+)\z/, 1]
      assert_equal major, result[:allocator][:version].split(".").first, path if major
    end
  end
end
